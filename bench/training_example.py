"""Runs a training example spec in-process and prints its figures (what docs/training.md's
tables were made with).

Run: ``python bench/training_example.py examples/training-sgc-vs-gcn.yaml [--datasets a,b]
[--seeds N] [--epochs N]`` (the options make a *reduced* version, and the JSON says so).
The same engine runs under the service (``faultlab submit`` the YAML gives the same tables).
Progress and the ``comparisons`` table go to stderr; the last stdout line is one JSON object:
the cell count, the wall time, the reduction applied, and the report's summary figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml


def _reduced(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    section = spec["training"]
    if args.datasets:
        keep = set(args.datasets.split(","))
        section["datasets"] = [d for d in section["datasets"]
                               if d.get("label", d["name"]) in keep]
    if args.seeds:
        section["seeds"] = args.seeds
    if args.epochs:
        section["recipes"] = [{**r, "epochs": min(r["epochs"], args.epochs)}
                              for r in section["recipes"]]
    return spec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("--datasets", help="keep only these dataset labels (comma-separated)")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int, help="cap every recipe's epochs")
    args = parser.parse_args()
    import torch

    from faultlab.workers.local import run_local

    torch.set_num_threads(1)
    spec = _reduced(yaml.safe_load(Path(args.spec).read_text()), args)
    started = time.perf_counter()
    report, records = run_local(spec)
    print(report.tables["comparisons"].to_string(), file=sys.stderr)
    summary = {k: v for k, v in report.summary.items() if not isinstance(v, str)}
    reduction = {k: v for k, v in vars(args).items() if k != "spec" and v}
    print(json.dumps({"spec": args.spec, "reduced": reduction or None, "cells": len(records),
                      "seconds": round(time.perf_counter() - started, 1), **summary}))


if __name__ == "__main__":
    main()
