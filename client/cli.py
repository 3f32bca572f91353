"""The ``faultlab`` command line.

The global options ``--address`` (or ``FAULTLAB_ADDRESS``), ``--token`` (or
``FAULTLAB_TOKEN``), ``--json``, ``--wide`` and ``--verbose`` go before or after the
subcommand. Errors print one line on stderr and exit non-zero:
2 invalid argument, 3 not found, 4 unauthenticated, 5 unavailable, 6 resource exhausted,
7 permission denied, 1 anything else (including a campaign that ended FAILED or CANCELLED
for ``watch``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from faultlab.client._commands import (
    cmd_cancel,
    cmd_compare,
    cmd_completion,
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
from faultlab.server.config import add_serve_flags, bounded

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
EXAMPLES = {
    "demo": "faultlab demo --dashboard 8080",
    "serve": "faultlab serve --port 50051 --dashboard-port 8080 --tokens-file tokens.yaml",
    "validate": "faultlab validate examples/fault-digits.yaml --deep --address localhost:50051",
    "zoo": "faultlab zoo --json | jq .models",
    "submit": "faultlab --address localhost:50051 submit examples/fault-digits.yaml --wait",
    "upload": "faultlab upload model.pt2 --address localhost:50051",
    "status": "faultlab status 3f2a9c1b0d4e5f60 --json",
    "watch": "faultlab watch 3f2a9c1b0d4e5f60",
    "list": "faultlab --address localhost:50051 list --limit 10",
    "cancel": "faultlab cancel 3f2a9c1b0d4e5f60",
    "events": "faultlab events 3f2a9c1b0d4e5f60 --cursor 1700000000000-0",
    "results": "faultlab results 3f2a9c1b0d4e5f60 --format csv -o layers.csv",
    "report": "faultlab report 3f2a9c1b0d4e5f60 --html report.html",
    "compare": "faultlab compare 3f2a9c1b0d4e5f60 9b8a7c6d5e4f3a21 --json",
    "replay": "faultlab replay 3f2a9c1b0d4e5f60 TRIAL_KEY",
    "completion": "faultlab completion bash > /etc/bash_completion.d/faultlab",
}
"""One example per subcommand, shown at the end of its ``--help``."""


def _globals(p: argparse.ArgumentParser, default: Any) -> argparse.ArgumentParser:
    """The options accepted before and after the subcommand. On the subcommands their default
    is ``SUPPRESS``, so a value given before the subcommand is not overwritten."""
    flag = False if default is None else default
    p.add_argument("--address", default=default,
                   help="coordinator host:port (env FAULTLAB_ADDRESS)")
    p.add_argument("--token", default=default, help="bearer token (env FAULTLAB_TOKEN)")
    p.add_argument("--json", action="store_true", default=flag,
                   help="machine-readable JSON output")
    p.add_argument("--wide", action="store_true", default=flag,
                   help="show every table column, however wide")
    p.add_argument("--verbose", action="store_true", default=flag,
                   help="show Ray's start-up messages and INFO logs")
    return p


def _add(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text,
                       epilog=f"example:\n  {EXAMPLES[name]}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    return _globals(p, argparse.SUPPRESS)


def _remote(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of each call (s)")
    p.add_argument("--tls", action="store_true",
                   help="connect over TLS with the system's authorities (env FAULTLAB_TLS=1)")
    p.add_argument("--ca", help="PEM of the authority of the coordinator's certificate "
                                "(implies --tls; env FAULTLAB_CA)")
    return p


def _add_local_commands(sub: Any) -> None:
    """Commands that need no coordinator: demo, serve, validate, zoo, completion."""
    p = _add(sub, "demo", "run a fault-injection campaign on an embedded coordinator")
    p.add_argument("--store", help="store URL (default: SQLite under $FAULTLAB_HOME)")
    p.add_argument("--dashboard", type=int, nargs="?", const=0, default=None, metavar="PORT",
                   help="also serve the web dashboard (default port: a free one) and keep it up")
    p.set_defaults(fn=cmd_demo)

    p = _add(sub, "serve", "run a coordinator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--dashboard-port", type=int, help="serve the web dashboard on this port")
    p.add_argument("--store", help="sqlite:///PATH or redis://HOST:PORT/DB (default: SQLite)")
    p.add_argument("--ray-address", help="join a Ray cluster (e.g. auto); default: local Ray")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance")
    p.add_argument("--tokens-file",
                   help="YAML {token: tenant}; also FAULTLAB_TOKENS=tok=tenant,...")
    p.add_argument("--max-active-per-tenant", type=bounded("max_active_per_tenant"), default=32,
                   metavar="N", help="non-terminal campaigns one tenant may have at once")
    p.add_argument("--reflection", action="store_true", help="enable gRPC server reflection")
    p.add_argument("--tls-cert", help="PEM certificate chain to serve TLS with (needs --tls-key)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--insecure", action="store_true",
                   help="serve a non-loopback address without tokens (anyone may submit)")
    p.add_argument("--allow-factory", action="append", default=[], metavar="MODULE",
                   help="let specs name factory callables of MODULE and its submodules "
                        "(repeatable; '*' allows any: only for trusted tenants)")
    add_serve_flags(p)  # the lease and event-stream settings (docs/deploy.md)
    p.set_defaults(fn=cmd_serve)

    p = _remote(_add(sub, "validate", "validate a spec without submitting it"))
    p.add_argument("spec")
    p.add_argument("--deep", action="store_true",
                   help="also check layer names etc.: on the coordinator with --address "
                        "(against its artifacts and limits), else here (loads torch)")
    p.set_defaults(fn=cmd_validate)

    p = _add(sub, "zoo", "list zoo models, datasets and transforms (tables, or --json)")
    p.set_defaults(fn=cmd_zoo)

    p = _add(sub, "completion", "print a shell completion script")
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(fn=cmd_completion)


def _add_remote_commands(sub: Any) -> None:
    """Commands that talk to a coordinator (``--address``, ``--token``, ``--timeout``)."""
    p = _remote(_add(sub, "submit", "submit a campaign spec; prints its id last"))
    p.add_argument("spec", help="YAML/JSON spec file (its model.file / dataset.file are "
                   "uploaded, relative to its folder)")
    p.add_argument("--request-id", help="idempotency key (a retried submit returns the same id)")
    p.add_argument("--wait", action="store_true", help="wait for the campaign to finish")
    p.add_argument("--quiet", action="store_true", help="no progress bar with --wait")
    p.set_defaults(fn=cmd_submit)

    p = _remote(_add(sub, "upload", "upload a model or data file; prints its digest"))
    p.add_argument("file", help="file on this machine (skipped when the coordinator has it)")
    p.set_defaults(fn=cmd_upload)

    for name, help_text, fn in (
        ("status", "state and progress of a campaign", cmd_status),
        ("watch", "follow a campaign live until it ends", cmd_watch),
        ("cancel", "cancel a campaign (no further shard starts)", cmd_cancel),
    ):
        p = _remote(_add(sub, name, help_text))
        p.add_argument("id")
        p.set_defaults(fn=fn)

    p = _remote(_add(sub, "list", "campaigns, newest first"))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(fn=cmd_list)

    p = _remote(_add(sub, "events", "print the event log as JSON lines (resumable)"))
    p.add_argument("id")
    p.add_argument("--cursor", default="", help="resume after this cursor")
    p.add_argument("--types", default="",
                   help="comma-separated event types to print: state, progress, trial, log, "
                        "curve (default: all; state changes always)")
    p.set_defaults(fn=cmd_events)
    _add_result_commands(sub)


def _add_result_commands(sub: Any) -> None:
    """Remote commands that read a campaign's results: tables, reports, comparisons, replay."""
    p = _remote(_add(sub, "results", "a report table, or the raw trials"))
    p.add_argument("id")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--table", default=None, help="report table name (default: the primary one) "
                                                 "or 'trials' for raw trial records")
    p.add_argument("-o", "--output", help="write to FILE")
    p.set_defaults(fn=cmd_results)

    p = _remote(_add(sub, "report", "the whole report as JSON, HTML or PNG plots"))
    p.add_argument("id")
    p.add_argument("--html", help="write an HTML report to FILE")
    p.add_argument("--plots", help="write PNG plots into DIR")
    p.add_argument("--sdc-tolerance", type=float, help="faults: re-threshold SDC at this deviation")
    p.set_defaults(fn=cmd_report)

    p = _remote(_add(sub, "compare", "differences of campaigns against the first (paired "
                                     "intervals where the plans are identical)"))
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--table", default=None, help="report table (default: the primary one)")
    p.add_argument("--metric", action="append", default=None, help="metric (repeatable)")
    p.add_argument("--unpaired", action="store_true", help="never pair trials")
    p.add_argument("--html", help="also write the comparison as HTML to FILE")
    p.set_defaults(fn=cmd_compare)

    p = _remote(_add(sub, "replay", "re-run one stored trial and compare"))
    p.add_argument("id")
    p.add_argument("trial_key")
    p.set_defaults(fn=cmd_replay)


def build_parser() -> argparse.ArgumentParser:
    parser = _globals(argparse.ArgumentParser(prog="faultlab", description=__doc__.splitlines()[0]),
                      None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_local_commands(sub)
    _add_remote_commands(sub)
    return parser


class _OnlyRayErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.name.startswith("ray")


def quiet_ray() -> None:
    """Silences Ray's start-up chatter (its warnings and INFO lines) in this process: a filter
    on the handlers Ray installs when imported (``ray.init`` resets the logger's level)."""
    import warnings

    import ray

    warnings.filterwarnings("ignore", module="ray")
    for handler in logging.getLogger(ray.__name__).handlers:
        handler.addFilter(_OnlyRayErrors())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("demo", "serve") and not args.verbose:
        quiet_ray()
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
