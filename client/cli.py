"""The ``faultlab`` command line.

Every command that talks to a coordinator takes ``--address`` (or ``FAULTLAB_ADDRESS``) and
``--token`` (or ``FAULTLAB_TOKEN``). Errors print one line on stderr and exit non-zero:
2 invalid argument, 3 not found, 4 unauthenticated, 5 unavailable, 6 resource exhausted,
7 permission denied, 1 anything else (including a campaign that ended FAILED or CANCELLED
for ``watch``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from faultlab.client._commands import (
    cmd_cancel,
    cmd_demo,
    cmd_events,
    cmd_list,
    cmd_replay,
    cmd_report,
    cmd_results,
    cmd_serve,
    cmd_status,
    cmd_submit,
    cmd_upload,
    cmd_validate,
    cmd_watch,
    cmd_zoo,
)
from faultlab.errors import FaultlabError

EXIT_CODES = {
    "INVALID_ARGUMENT": 2,
    "NOT_FOUND": 3,
    "UNAUTHENTICATED": 4,
    "UNAVAILABLE": 5,
    "RESOURCE_EXHAUSTED": 6,
    "PERMISSION_DENIED": 7,
}
"""Exit status per error code name (anything else exits 1)."""


# --- parser --------------------------------------------------------------------------------
def _remote(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the options of every command that talks to a coordinator."""
    p.add_argument("--address", help="coordinator host:port (env FAULTLAB_ADDRESS)")
    p.add_argument("--token", help="bearer token (env FAULTLAB_TOKEN)")
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of each call (s)")
    return p


def _add_local_commands(sub: Any) -> None:
    """Commands that need no coordinator address: demo, serve, validate, zoo."""
    p = sub.add_parser("demo", help="run a fault-injection campaign on an embedded coordinator")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--store", help="store URL (default: SQLite under $FAULTLAB_HOME)")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("serve", help="run a coordinator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--store", help="sqlite:///PATH or redis://HOST:PORT/DB (default: SQLite)")
    p.add_argument("--ray-address", help="join a Ray cluster (e.g. auto); default: local Ray")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance")
    p.add_argument("--tokens-file",
                   help="YAML {token: tenant}; also FAULTLAB_TOKENS=tok=tenant,...")
    p.add_argument("--max-active-per-tenant", type=int, default=32)
    p.add_argument("--reflection", action="store_true", help="enable gRPC server reflection")
    p.add_argument("--allow-factory", action="append", default=[], metavar="MODULE",
                   help="let specs name factory callables of MODULE and its submodules "
                        "(repeatable; '*' allows any: only for trusted tenants)")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("validate", help="validate a spec without submitting it")
    p.add_argument("spec")
    p.add_argument("--deep", action="store_true", help="also check layer names etc. (loads torch)")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("zoo", help="list zoo models, datasets and transforms")
    p.set_defaults(fn=cmd_zoo)


def _add_remote_commands(sub: Any) -> None:
    """Commands that talk to a coordinator (``--address``, ``--token``, ``--timeout``)."""
    p = _remote(sub.add_parser("submit", help="submit a campaign spec; prints its id last"))
    p.add_argument("spec", help="YAML/JSON spec file (its model.file / dataset.file are "
                   "uploaded, relative to its folder)")
    p.add_argument("--request-id", help="idempotency key (a retried submit returns the same id)")
    p.add_argument("--wait", action="store_true", help="wait for the campaign to finish")
    p.add_argument("--quiet", action="store_true", help="no progress bar with --wait")
    p.set_defaults(fn=cmd_submit)

    p = _remote(sub.add_parser("upload", help="upload a model or data file; prints its digest"))
    p.add_argument("file", help="file on this machine (skipped when the coordinator has it)")
    p.set_defaults(fn=cmd_upload)

    p = _remote(sub.add_parser("status", help="state and progress of a campaign"))
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)

    p = _remote(sub.add_parser("watch", help="follow a campaign live until it ends"))
    p.add_argument("id")
    p.set_defaults(fn=cmd_watch)

    p = _remote(sub.add_parser("list", help="campaigns, newest first"))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_list)

    p = _remote(sub.add_parser("cancel", help="cancel a campaign (stops its Ray tasks)"))
    p.add_argument("id")
    p.set_defaults(fn=cmd_cancel)

    p = _remote(sub.add_parser("events", help="print the event log as JSON lines (resumable)"))
    p.add_argument("id")
    p.add_argument("--cursor", default="", help="resume after this cursor")
    p.set_defaults(fn=cmd_events)

    p = _remote(sub.add_parser("results", help="a report table, or the raw trials"))
    p.add_argument("id")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--table", default=None, help="report table name (default: the primary one) "
                                                 "or 'trials' for raw trial records")
    p.add_argument("-o", "--output", help="write to FILE")
    p.set_defaults(fn=cmd_results)

    p = _remote(sub.add_parser("report", help="the whole report as JSON, HTML or PNG plots"))
    p.add_argument("id")
    p.add_argument("--html", help="write an HTML report to FILE")
    p.add_argument("--plots", help="write PNG plots into DIR")
    p.set_defaults(fn=cmd_report)

    p = _remote(sub.add_parser("replay", help="re-run one stored trial and compare"))
    p.add_argument("id")
    p.add_argument("trial_key")
    p.set_defaults(fn=cmd_replay)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faultlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_local_commands(sub)
    _add_remote_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except FaultlabError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_CODES.get(exc.code, 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `faultlab zoo | head`
        return 0
    except TimeoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
