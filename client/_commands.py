"""The ``faultlab`` commands, one function each (``cli.py`` parses the arguments)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from faultlab.client._terminal import console, fit_table, print_table
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
                  timeout=args.timeout, tls=args.tls, ca=args.ca)


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
        import pandas as pd

        rows = [{"id": s.id, "state": s.state.value, "done": f"{s.trials_done}/{s.trials_total}",
                 "kind": s.kind, "name": s.name, "error": s.error} for s in statuses]
        print_table(pd.DataFrame(rows, columns=["id", "state", "done", "kind", "name", "error"]),
                    wide=args.wide)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    print(_status_line(_client(args).get(args.id).cancel()))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    for event in _client(args).get(args.id).events(cursor=args.cursor, types=types):
        print(json.dumps({"cursor": event.cursor, "time": event.time, "type": event.type,
                          **event.data}), flush=True)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    job = _client(args).get(args.id)
    out = Path(args.output) if args.output else None
    if args.table == "trials" and args.format == "parquet" and out:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        pq.write_table(job.results().to_table(), out)  # Arrow straight to Parquet
        print(out)
        return 0
    if args.table == "trials":
        df = job.results().to_pandas()
    else:
        df = job.report().table(args.table, readable=False)
    if args.format == "table":
        if out:
            out.write_text(df.to_string(index=False))
        else:
            print_table(df, f"{args.id}: {args.table or 'report'}", wide=args.wide)
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
    job = _client(args).get(args.id)
    report = job.report()
    if args.sdc_tolerance is not None:  # fault campaigns: SDC re-thresholded from the trials
        from faultlab.workers.faults.tolerance import at_tolerance

        report = at_tolerance(report, job.results().records, args.sdc_tolerance)
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
    if args.deep and (args.address or os.environ.get("FAULTLAB_ADDRESS")):
        spec = _client(args).validate(path)
        print(f"ok on {args.address or os.environ['FAULTLAB_ADDRESS']}: {spec.kind} campaign, "
              f"spec hash {spec.spec_hash[:16]}")
        return 0
    if args.deep:
        from faultlab.workers import get_engine

        get_engine(spec.kind).validate(spec)
    print(f"ok: {spec.kind} campaign, spec hash {spec.spec_hash[:16]}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    """Zoo models, datasets and transforms: tables, or one JSON object with ``--json``."""
    import pandas as pd

    from faultlab.workers.transforms import TRANSFORMS
    from faultlab.workers.zoo import dataset_entries, model_entries

    def first_line(text: str) -> str:
        return text.splitlines()[0] if text else ""

    entries: dict[str, dict[str, dict[str, str]]] = {
        "models": {n: {"task": e.task, "about": first_line(e.description)}
                   for n, e in sorted(model_entries().items())},
        "datasets": {n: {"task": e.task, "about": first_line(e.description)}
                     for n, e in sorted(dataset_entries().items())},
    }
    transforms = {n: m.summary for n, m in sorted(TRANSFORMS.entries().items())}
    if args.json:
        print(json.dumps({**entries, "transforms": transforms}, indent=2, ensure_ascii=False))
        return 0
    for section, listing in entries.items():
        rows = [{"name": n, **e} for n, e in listing.items()]
        print_table(pd.DataFrame(rows), section, wide=args.wide)
    rows = [{"name": n, "about": about} for n, about in transforms.items()]
    print_table(pd.DataFrame(rows), "transforms", wide=args.wide)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from faultlab.client._client import default_store_url
    from faultlab.server.app import RunningServer
    from faultlab.server.auth import TlsFiles, is_loopback, load_tokens
    from faultlab.server.config import CoordinatorConfig, serve_settings
    from faultlab.server.serve import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    tokens = load_tokens(args.tokens_file)
    if args.dashboard_port is not None and not tokens and not is_loopback(args.host):
        raise FaultlabError(f"--dashboard-port on {args.host} needs tokens (--tokens-file or "
                            "FAULTLAB_TOKENS): the dashboard never serves a network openly")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise FaultlabError("--tls-cert and --tls-key go together")
    tls = TlsFiles(args.tls_cert, args.tls_key) if args.tls_cert else None
    config = CoordinatorConfig(ray_address=args.ray_address, num_cpus=args.num_cpus,
                               max_active_per_tenant=args.max_active_per_tenant,
                               allow_factory=tuple(args.allow_factory), **serve_settings(args))

    def ready(running: RunningServer) -> None:
        print(f"faultlab coordinator listening on {args.host}:{running.port} "
              f"(store {args.store or default_store_url()}, auth {'on' if tokens else 'off'})",
              flush=True)
        if running.dashboard is not None:
            print(f"dashboard at {running.dashboard.url}", flush=True)

    return serve(ready, store=args.store or default_store_url(), host=args.host, port=args.port,
                 config=config, tokens=tokens, reflection=args.reflection,
                 dashboard_port=args.dashboard_port, tls=tls, insecure=args.insecure)


def demo_spec_text() -> str:
    return resources.files("faultlab.client").joinpath("demo.yaml").read_text()


def headline(report: Any) -> str:
    """What the campaign evaluated and its key rates with their intervals, in plain words (the
    HTML report's headline)."""
    from faultlab.client._report_text import headline as report_headline

    title, *lines = report_headline(report)
    return "\n".join([title, *(f"  {line}" for line in lines)])


def cmd_demo(args: argparse.Namespace) -> int:
    from faultlab.client import Client

    out = console()
    quiet = args.json
    if not quiet:
        out.print("[bold]faultlab demo[/]: embedded coordinator (gRPC + local Ray + SQLite)")
    started = time.perf_counter()
    if args.dashboard is not None:
        from faultlab.client._client import default_store_url
        from faultlab.server.app import EmbeddedServer

        server = EmbeddedServer(args.store or default_store_url(), dashboard_port=args.dashboard)
        client = Client(server.address)
        dashboard = server.running.dashboard
        if dashboard is not None:
            out.print(f"dashboard at [cyan]{dashboard.url}[/]")
    else:
        client = Client(store=args.store)
    job = client.submit(demo_spec_text())
    if not quiet:
        out.print(f"submitted campaign [cyan]{job.id}[/] to {client.address}")
    status = job.wait(progress=not quiet)
    report = job.report()
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({
            "campaign_id": job.id, "state": status.state.value, "seconds": round(elapsed, 2),
            "trials": status.trials_done, "cached": status.trials_cached,
            "headline": headline(report),
            "summary": report.to_dict()["summary"],
            report.primary: report.to_dict()["tables"].get(report.primary, []),
            "provenance": report.to_dict()["provenance"],
        }))
        return 0
    out.print(headline(report), highlight=False)
    title = f"{report.kind}: {report.primary} (95 % Wilson CIs)"
    out.print(fit_table(report.table(readable=False), title, width=out.width, wide=args.wide))
    prov = report.provenance
    out.print(f"[dim]spec {str(prov.get('spec_hash', ''))[:12]}  "
              f"code {prov.get('code_version')}  "
              f"seed {prov.get('seed')}  {status.trials_done} trials "
              f"({status.trials_cached} cached) in {elapsed:.1f}s[/]")
    if args.dashboard is not None:
        out.print("dashboard running; Ctrl-C stops it")
        while True:
            time.sleep(3600)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    comparison = _client(args).compare(*args.ids, table=args.table, metrics=args.metric,
                                       paired=not args.unpaired)
    if args.html:
        Path(args.html).write_text(comparison.to_html())
    if args.json:
        print(comparison.to_json())
    else:
        print_table(comparison.table(), f"{comparison.table_name}: each campaign minus "
                    f"{comparison.labels[0]}", wide=args.wide)
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    """A completion script for bash or zsh (zsh through ``bashcompinit``)."""
    from faultlab.client.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cases = []
    for name, p in sorted(sub.choices.items()):
        opts = " ".join(o for a in p._actions for o in a.option_strings)
        cases.append(f'    {name}) opts="{opts}" ;;')
    script = "\n".join([
        "# faultlab completion (generated by `faultlab completion`)",
        *(["autoload -U +X bashcompinit && bashcompinit"] if args.shell == "zsh" else []),
        "_faultlab() {",
        '  local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" opts="" w',
        '  for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do',
        '    case "$w" in -*) ;; *) cmd="$w"; break ;; esac',
        "  done",
        '  case "$cmd" in',
        *cases,
        f'    *) opts="{" ".join(sorted(sub.choices))} --address --token --json --wide '
        '--verbose --help" ;;',
        "  esac",
        '  COMPREPLY=($(compgen -W "$opts" -- "$cur"))',
        '  [ ${#COMPREPLY[@]} -eq 0 ] && COMPREPLY=($(compgen -f -- "$cur"))',
        "}",
        "complete -F _faultlab faultlab",
    ])
    print(script)
    return 0
