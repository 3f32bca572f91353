"""The ``faultlab`` command line.

Every command that talks to a coordinator takes ``--address`` (or ``FAULTLAB_ADDRESS``) and
``--token`` (or ``FAULTLAB_TOKEN``). Errors print one line on stderr and exit non-zero:
2 invalid argument, 3 not found, 4 unauthenticated, 5 unavailable, 6 resource exhausted,
1 anything else (including a campaign that ended FAILED or CANCELLED for ``watch``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import grpc

from faultlab.errors import FaultlabError

EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 2,
    grpc.StatusCode.NOT_FOUND: 3,
    grpc.StatusCode.UNAUTHENTICATED: 4,
    grpc.StatusCode.UNAVAILABLE: 5,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 6,
}


def _client(args: argparse.Namespace) -> Any:
    from faultlab.client import Client

    address = args.address or os.environ.get("FAULTLAB_ADDRESS")
    if not address:
        raise FaultlabError(
            "no coordinator address: pass --address HOST:PORT or set FAULTLAB_ADDRESS "
            "(start one with `faultlab serve`, or try `faultlab demo`)"
        )
    return Client(address, token=args.token or os.environ.get("FAULTLAB_TOKEN"),
                  timeout=args.timeout)


def _console() -> Any:
    from rich.console import Console

    # Not a terminal (a pipe, a file): don't squeeze tables into 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=250)


def _status_line(s: Any) -> str:
    pct = f"{100 * s.progress:.1f}%" if s.trials_total else "-"
    line = f"{s.id}  {s.state.value:<9}  {s.trials_done}/{s.trials_total} ({pct})  {s.kind}  {s.name}"
    if s.trials_cached:
        line += f"  cached={s.trials_cached}"
    if s.trials_failed:
        line += f"  failed={s.trials_failed}"
    if s.error:
        line += f"  error: {s.error}"
    return line


def _status_dict(s: Any) -> dict[str, Any]:
    return {
        "id": s.id, "name": s.name, "kind": s.kind, "state": s.state.value, "owner": s.owner,
        "trials_total": s.trials_total, "trials_done": s.trials_done,
        "trials_cached": s.trials_cached, "trials_failed": s.trials_failed,
        "progress": s.progress, "spec_hash": s.spec_hash, "seed": s.seed,
        "code_version": s.code_version, "created_at": s.created_at, "error": s.error,
    }


def compact(df: Any) -> Any:
    """Merges every ``X``/``X_ci_low``/``X_ci_high`` triple (and ``X_rate``/``X_ci_*``) into one
    ``X [95% CI]`` text column, so a report table fits a terminal."""
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    used: set[str] = set()
    for col in df.columns:
        if col in used:
            continue
        stem = col[: -len("_rate")] if col.endswith("_rate") else col
        candidates = [f"{stem}_ci_low", f"{col}_ci_low"]
        if col in {"mean", "rate", "estimate", "value"}:
            candidates.append("ci_low")
        low = next((c for c in candidates if c in df.columns), None)
        high = low.replace("_low", "_high") if low else None
        if low and high and high in df.columns and df[col].dtype.kind == "f" and low not in used:
            out[f"{col} [CI]"] = [
                "-" if pd.isna(v) else f"{v:.3g} [{lo:.3g}, {hi:.3g}]"
                for v, lo, hi in zip(df[col], df[low], df[high], strict=True)
            ]
            used.update({col, low, high})
        elif not col.endswith(("_ci_low", "_ci_high")) and col not in {"ci_low", "ci_high"}:
            out[col] = df[col]
            used.add(col)
    return out


def render_table(df: Any, title: str = "") -> Any:
    """A rich table of a report DataFrame (rates merged with their CIs, 4 significant digits)."""
    from rich.table import Table

    df = compact(df)
    table = Table(title=title or None, show_lines=False)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fi" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    return table


# --- commands ------------------------------------------------------------------------------
def cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.submit(args.spec, request_id=args.request_id)
    if args.wait:
        job.wait(progress=not args.quiet)
    print(job.id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _client(args).get(args.id).status()
    print(json.dumps(_status_dict(status)) if args.json else _status_line(status))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    job = _client(args).get(args.id)
    status = job.wait(progress=True, raise_on_failure=False)
    print(_status_line(status))
    return 0 if status.state.value == "SUCCEEDED" else 1


def cmd_list(args: argparse.Namespace) -> int:
    statuses = _client(args).list(limit=args.limit)
    if args.json:
        print(json.dumps([_status_dict(s) for s in statuses]))
    else:
        for s in statuses:
            print(_status_line(s))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    print(_status_line(_client(args).get(args.id).cancel()))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    for event in _client(args).get(args.id).events(cursor=args.cursor):
        print(json.dumps({"cursor": event.cursor, "time": event.time, "type": event.type,
                          **event.data}), flush=True)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    job = _client(args).get(args.id)
    if args.table == "trials":
        df = job.results().to_pandas()
    else:
        df = job.report().table(args.table)
    out = Path(args.output) if args.output else None
    if args.format == "table":
        if out:
            out.write_text(df.to_string(index=False))
        else:
            _console().print(render_table(df, title=f"{args.id}: {args.table or 'report'}"))
    elif args.format in {"csv", "json"}:
        text = df.to_csv(index=False) if args.format == "csv" else df.to_json(orient="records")
        if out:
            out.write_text(text)
        else:
            print(text, end="" if text.endswith("\n") else "\n")
    elif args.format == "parquet":
        if not out:
            raise FaultlabError("--format parquet needs -o FILE")
        df.to_parquet(out, index=False)
    if out:
        print(out)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    report = _client(args).get(args.id).report()
    if args.html:
        Path(args.html).write_text(report.to_html())
        print(args.html)
    if args.plots:
        for path in report.save_plots(args.plots):
            print(path)
    if not args.html and not args.plots:
        print(json.dumps(report.to_dict(), indent=2))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    result = _client(args).get(args.id).replay(args.trial_key)
    print(json.dumps({"identical": result.identical, "trial": result.trial,
                      "stored": result.stored, "replayed": result.replayed}, indent=2))
    return 0 if result.identical else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from faultlab.spec import parse_spec

    spec = parse_spec(args.spec)
    if args.deep:
        from faultlab.workers import get_engine

        get_engine(spec.kind).validate(spec)
    print(f"ok: {spec.kind} campaign, spec hash {spec.spec_hash[:16]}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from faultlab.workers.transforms import transform_entries
    from faultlab.workers.zoo import dataset_entries, model_entries

    def first_line(text: str) -> str:
        return text.splitlines()[0] if text else ""

    listing = {
        "models": {n: {"task": e.task, "about": first_line(e.description)}
                   for n, e in sorted(model_entries().items())},
        "datasets": {n: {"task": e.task, "about": first_line(e.description)}
                     for n, e in sorted(dataset_entries().items())},
        "transforms": {n: first_line(e.description) for n, e in sorted(transform_entries().items())},
    }
    print(json.dumps(listing, indent=2))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from faultlab.client._client import default_store_url
    from faultlab.server.app import start_server
    from faultlab.server.auth import load_tokens
    from faultlab.server.coordinator import CoordinatorConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tokens = load_tokens(args.tokens_file)
    config = CoordinatorConfig(ray_address=args.ray_address, num_cpus=args.num_cpus,
                               max_active_per_tenant=args.max_active_per_tenant)

    async def main() -> None:
        running = await start_server(
            args.store or default_store_url(), host=args.host, port=args.port, config=config,
            tokens=tokens, reflection=args.reflection,
        )
        print(f"faultlab coordinator listening on {args.host}:{running.port} "
              f"(store {args.store or default_store_url()}, auth {'on' if tokens else 'off'})",
              flush=True)
        try:
            await running.server.wait_for_termination()
        finally:
            await running.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def demo_spec_text() -> str:
    return resources.files("faultlab.client").joinpath("demo.yaml").read_text()


def cmd_demo(args: argparse.Namespace) -> int:
    from faultlab.client import Client

    console = _console()
    quiet = args.json
    if not quiet:
        console.print("[bold]faultlab demo[/]: embedded coordinator (gRPC + local Ray + SQLite)")
    started = time.perf_counter()
    client = Client(store=args.store)
    job = client.submit(demo_spec_text())
    if not quiet:
        console.print(f"submitted campaign [cyan]{job.id}[/] to {client.address}")
    status = job.wait(progress=not quiet)
    report = job.report()
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({
            "campaign_id": job.id, "state": status.state.value, "seconds": round(elapsed, 2),
            "trials": status.trials_done, "cached": status.trials_cached,
            "summary": report.to_dict()["summary"],
            report.primary: report.to_dict()["tables"].get(report.primary, []),
            "provenance": report.to_dict()["provenance"],
        }))
        return 0
    console.print(render_table(report.table(), title=f"{report.kind}: {report.primary} (95 % Wilson CIs)"))
    import pandas as pd

    scalars = {k: v for k, v in report.summary.items() if isinstance(v, int | float) and "_ci_" in k
               or (isinstance(v, float) and f"{k}_ci_low" in report.summary)
               or (k.endswith("_rate") and f"{k[:-5]}_ci_low" in report.summary)}
    if scalars:
        console.print(render_table(pd.DataFrame([scalars]), title="whole campaign"))
    prov = report.provenance
    console.print(f"[dim]spec {str(prov.get('spec_hash', ''))[:12]}  code {prov.get('code_version')}  "
                  f"seed {prov.get('seed')}  {status.trials_done} trials "
                  f"({status.trials_cached} cached) in {elapsed:.1f}s[/]")
    return 0


# --- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faultlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def remote(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--address", help="coordinator host:port (env FAULTLAB_ADDRESS)")
        p.add_argument("--token", help="bearer token (env FAULTLAB_TOKEN)")
        p.add_argument("--timeout", type=float, default=30.0, help="deadline of each call (s)")
        return p

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
    p.add_argument("--tokens-file", help="YAML {token: tenant}; also FAULTLAB_TOKENS=tok=tenant,...")
    p.add_argument("--max-active-per-tenant", type=int, default=32)
    p.add_argument("--reflection", action="store_true", help="enable gRPC server reflection")
    p.set_defaults(fn=cmd_serve)

    p = remote(sub.add_parser("submit", help="submit a campaign spec; prints its id last"))
    p.add_argument("spec", help="YAML/JSON spec file")
    p.add_argument("--request-id", help="idempotency key (a retried submit returns the same id)")
    p.add_argument("--wait", action="store_true", help="wait for the campaign to finish")
    p.add_argument("--quiet", action="store_true", help="no progress bar with --wait")
    p.set_defaults(fn=cmd_submit)

    p = remote(sub.add_parser("status", help="state and progress of a campaign"))
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)

    p = remote(sub.add_parser("watch", help="follow a campaign live until it ends"))
    p.add_argument("id")
    p.set_defaults(fn=cmd_watch)

    p = remote(sub.add_parser("list", help="campaigns, newest first"))
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_list)

    p = remote(sub.add_parser("cancel", help="cancel a campaign (stops its Ray tasks)"))
    p.add_argument("id")
    p.set_defaults(fn=cmd_cancel)

    p = remote(sub.add_parser("events", help="print the event log as JSON lines (resumable)"))
    p.add_argument("id")
    p.add_argument("--cursor", default="", help="resume after this cursor")
    p.set_defaults(fn=cmd_events)

    p = remote(sub.add_parser("results", help="a report table, or the raw trials"))
    p.add_argument("id")
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table")
    p.add_argument("--table", default=None, help="report table name (default: the primary one) "
                                                 "or 'trials' for raw trial records")
    p.add_argument("-o", "--output", help="write to FILE")
    p.set_defaults(fn=cmd_results)

    p = remote(sub.add_parser("report", help="the whole report as JSON, HTML or PNG plots"))
    p.add_argument("id")
    p.add_argument("--html", help="write an HTML report to FILE")
    p.add_argument("--plots", help="write PNG plots into DIR")
    p.set_defaults(fn=cmd_report)

    p = remote(sub.add_parser("replay", help="re-run one stored trial and compare"))
    p.add_argument("id")
    p.add_argument("trial_key")
    p.set_defaults(fn=cmd_replay)

    p = sub.add_parser("validate", help="validate a spec without submitting it")
    p.add_argument("spec")
    p.add_argument("--deep", action="store_true", help="also check layer names etc. (loads torch)")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("zoo", help="list zoo models, datasets and transforms")
    p.set_defaults(fn=cmd_zoo)
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
