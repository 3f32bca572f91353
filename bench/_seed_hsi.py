"""Hyperspectral seed figures: the GAN's and the CRF's overall-accuracy gains with 5 labels
per class (Zhong et al., 2019), paired over seeds; imported by ``bench/seed_recipes.py``.

``run(quick)`` trains the ``hyperspectral`` workload in-process (the engine the service
runs) on ``examples/training-hyperspectral.yaml``'s scene with 5 labels per class only: 5
seeds (quick: 3 seeds, 100 steps) × cnn, gan, gan_crf. It returns ``hsi_gan_gain`` (gan −
cnn) and ``hsi_crf_gain`` (gan_crf − gan) as ``{"estimate", "ci", "pairs"}`` plus
``…_ci`` as ``[low, high]``.

``python bench/_seed_hsi.py [--quick]`` prints that dict as its last line (one JSON object);
``python bench/_seed_hsi.py --example SPEC [--seeds N] [--epochs N] [--plots DIR]`` runs a
whole example spec instead (reduced by the options, and the JSON says so), prints its
summary table to stderr and saves its figures as PNGs (what docs/hyperspectral.md shows).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "training-hyperspectral.yaml"


def _spec(path: Path, seeds: int | None, epochs: int | None,
          labels: list[int] | None) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text())
    section = spec["training"]["hyperspectral"]
    if seeds:
        spec["training"]["seeds"] = seeds
    if epochs:
        section["epochs"] = epochs
    if labels:
        section["labels_per_class"] = labels
    return spec


def _run(spec: dict[str, Any]) -> tuple[Any, float]:
    from faultlab.workers.local import run_local

    start = time.perf_counter()
    report, _ = run_local(spec)
    return report, time.perf_counter() - start


def _gain(summary: dict[str, Any], name: str) -> dict[str, Any]:
    stat = summary[f"hsi_{name}_gain"]
    return {"estimate": stat["estimate"], "ci": stat["ci"], "pairs": stat["pairs"]}


def run(quick: bool) -> dict[str, Any]:
    """The seed figures (see the module docstring)."""
    seeds, epochs = (3, 100) if quick else (5, None)
    report, wall = _run(_spec(EXAMPLE, seeds, epochs, [5]))
    out: dict[str, Any] = {"hsi_cells": report.summary["cells"], "hsi_seconds": round(wall, 1),
                           "hsi_size": f"{'quick' if quick else 'full'}: 5 labels per class, "
                                       f"{seeds} seeds, {epochs or 'example'} epochs"}
    for name in ("gan", "crf"):
        gain = _gain(report.summary, name)
        out[f"hsi_{name}_gain"] = gain
        out[f"hsi_{name}_gain_ci"] = gain["ci"]
    return out


def _example(args: argparse.Namespace) -> dict[str, Any]:
    report, wall = _run(_spec(Path(args.example), args.seeds, args.epochs, None))
    print(report.table("summary").to_string(), file=sys.stderr)
    print(report.table("comparisons").to_string(), file=sys.stderr)
    if args.plots:
        from faultlab.workers.training.plots import plot

        Path(args.plots).mkdir(parents=True, exist_ok=True)
        for name, fig in plot(report).items():
            fig.savefig(Path(args.plots) / f"hyperspectral-{name}.png", dpi=110)
    figures = {k: v for k, v in report.summary.items() if k.startswith("hsi_")}
    return {"spec": args.example, "cells": report.summary["cells"],
            "errors": report.summary["errors"], "seconds": round(wall, 1),
            "reduced": {"seeds": args.seeds, "epochs": args.epochs}, **figures}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--example", help="run this example spec instead")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--plots", help="save the example's figures here")
    args = parser.parse_args()
    out = _example(args) if args.example else run(args.quick)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
