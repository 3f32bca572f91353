"""The ``faultlab`` commands, one function each (``cli.py`` parses the arguments)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from faultlab.errors import FaultlabError


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
    line = (f"{s.id}  {s.state.value:<9}  {s.trials_done}/{s.trials_total} ({pct})  "
            f"{s.kind}  {s.name}")
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


def cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.submit(Path(args.spec), request_id=args.request_id)
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


def cmd_upload(args: argparse.Namespace) -> int:
    """Uploads a file (skipped when the coordinator has it); prints its digest last."""
    client = _client(args)
    digest = client.upload(Path(args.file))
    sent = client.last_upload_bytes
    print(f"uploaded {sent} bytes" if sent else "already on the coordinator", file=sys.stderr)
    print(digest)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from faultlab.client._artifacts import localize_spec
    from faultlab.spec import parse_spec
    from faultlab.spec_text import read_spec_file

    # model.file / dataset.file are paths next to the spec: checked here, uploaded by submit.
    path = Path(args.spec)
    data, _ = localize_spec(read_spec_file(path), path.resolve().parent)
    spec = parse_spec(data)
    if args.deep:
        from faultlab.workers import get_engine

        get_engine(spec.kind).validate(spec)
    print(f"ok: {spec.kind} campaign, spec hash {spec.spec_hash[:16]}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from faultlab.workers.transforms import TRANSFORMS
    from faultlab.workers.zoo import dataset_entries, model_entries

    def first_line(text: str) -> str:
        return text.splitlines()[0] if text else ""

    listing = {
        "models": {n: {"task": e.task, "about": first_line(e.description)}
                   for n, e in sorted(model_entries().items())},
        "datasets": {n: {"task": e.task, "about": first_line(e.description)}
                     for n, e in sorted(dataset_entries().items())},
        "transforms": {n: m.summary for n, m in sorted(TRANSFORMS.entries().items())},
    }
    print(json.dumps(listing, indent=2))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from faultlab.client._client import default_store_url
    from faultlab.server.app import start_server
    from faultlab.server.auth import load_tokens
    from faultlab.server.config import CoordinatorConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tokens = load_tokens(args.tokens_file)
    config = CoordinatorConfig(ray_address=args.ray_address, num_cpus=args.num_cpus,
                               max_active_per_tenant=args.max_active_per_tenant,
                               allow_factory=tuple(args.allow_factory))

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
    title = f"{report.kind}: {report.primary} (95 % Wilson CIs)"
    console.print(render_table(report.table(), title=title))
    import pandas as pd

    scalars = {k: v for k, v in report.summary.items() if isinstance(v, int | float) and "_ci_" in k
               or (isinstance(v, float) and f"{k}_ci_low" in report.summary)
               or (k.endswith("_rate") and f"{k[:-5]}_ci_low" in report.summary)}
    if scalars:
        console.print(render_table(pd.DataFrame([scalars]), title="whole campaign"))
    prov = report.provenance
    console.print(f"[dim]spec {str(prov.get('spec_hash', ''))[:12]}  "
                  f"code {prov.get('code_version')}  "
                  f"seed {prov.get('seed')}  {status.trials_done} trials "
                  f"({status.trials_cached} cached) in {elapsed:.1f}s[/]")
    return 0
