"""Three founding papers as training recipes (issue 15): MoEx, learning in the frequency
domain, hyperspectral GAN + CRF. Runs the examples in-process (the engine the service runs)
and prints their headline figures; the last stdout line is one JSON object.

* ``moex_gain`` — test accuracy MoEx − baseline, paired over seeds (examples/
  training-moex.yaml; Li et al., CVPR 2021), and ``mixup_gain`` likewise;
* ``moex_sdc_rate_diff`` — with ``--faults``: the SDC rate of weight bit flips on the MoEx
  cell − on the baseline cell, the identical fault plan (same architecture and fault seed),
  paired over seeds;
* ``frequency_vs_downsampled_acc_diff`` — test accuracy of 48 learned DCT channels − spatial
  downsampling to the same input size (examples/training-frequency.yaml; Xu et al., CVPR
  2020), ``frequency_half_vs_downsampled_acc_diff`` for 24 channels (half the input),
  ``frequency_vs_full_acc_diff`` against the full-size images, ``frequency_input_bytes_ratio``
  (input bytes of 48 channels ÷ the full-size image's) and the selected channels' Y and
  low-frequency shares;
* ``hsi_gan_gain``, ``hsi_crf_gain`` — from ``bench/_seed_hsi.py``'s ``run(quick)`` when
  that module is present (Zhong et al., 2019).

Run: ``python bench/seed_recipes.py [--quick] [--faults N] [--jobs 2] [--only PART]
[--plots DIR]``. ``--quick`` is a
*reduced* size (fewer images and epochs, still 5 seeds) and the JSON says so. Every figure is
``{"estimate", "ci": [low, high], "pairs"}`` (95 % paired t interval over seeds).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUICK = {"moex": {"num_per_class": 40, "epochs": 6}, "frequency": {"num_per_class": 30,
                                                                 "epochs": 6}}


def _spec(name: str, quick: bool) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / f"examples/training-{name}.yaml").read_text())
    if quick:
        image = spec["training"]["image"]
        for d in image["datasets"]:
            d["options"]["num_per_class"] = QUICK[name]["num_per_class"]
        image["recipes"] = [{**r, "epochs": QUICK[name]["epochs"]} for r in image["recipes"]]
    return spec


def _figure(summary: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = summary.get(name)
    return value if isinstance(value, dict) else None


def _fault_diff(records: list[Any], trials: int) -> dict[str, Any]:
    """SDC rate on the MoEx cell − on the baseline cell, per seed, same fault plan."""
    from faultlab.hashing import blob_digest
    from faultlab.workers.local import run_local
    from faultlab.workers.training.analysis import paired_difference
    from faultlab.workers.training.workloads import workload_of_trial
    from faultlab.workers.zoo.provided import provided_artifacts

    rates: dict[tuple[str, int], float] = {}
    for r in records:
        recipe = r.trial["recipe"]["name"]
        if recipe not in ("baseline", "moex") or r.result.get("status") != "completed":
            continue
        blob = r.result["checkpoint"]
        ref = workload_of_trial(r.trial).reference(r.trial)
        digest = blob_digest(blob)
        spec = {"kind": "faults", "name": "moex-faults", "seed": 11,
                "model": {**ref, "file": digest},
                "dataset": {"name": "shapes32", "options": r.trial["dataset_options"]},
                "faults": {"fault_model": "bitflip", "target": "weight",
                           "sampling": "uniform", "trials": trials}}
        with provided_artifacts({digest: blob}):
            report, _ = run_local(spec)
        rates[(recipe, int(r.trial["seed"]))] = float(report.summary["sdc_rate"])
    pairs = [(rates[("baseline", s)], rates[("moex", s)]) for (name, s) in rates
             if name == "baseline" and ("moex", s) in rates]
    stat = paired_difference(pairs)
    return {"estimate": stat["estimate"], "ci": [stat["ci_low"], stat["ci_high"]],
            "pairs": int(stat["n"]), "trials_per_cell": trials,
            "baseline_sdc_rate": sum(a for a, _ in pairs) / max(len(pairs), 1)}


def run_part(name: str, quick: bool, faults: int, plots: str | None = None) -> dict[str, Any]:
    """One example (``moex`` or ``frequency``) in-process; its figures (and its plots as
    PNGs under ``plots``)."""
    import torch

    from faultlab.workers.local import run_local

    torch.set_num_threads(1)
    spec = _spec(name, quick)
    started = time.perf_counter()
    report, records = run_local(spec)
    summary = report.summary
    out: dict[str, Any] = {f"{name}_cells": len(records), f"{name}_errors": summary["errors"],
                           f"{name}_seconds": round(time.perf_counter() - started, 1)}
    table = report.tables["summary"]
    out[f"{name}_test_acc"] = {f"{r.recipe}/{r.variant}": [round(r.test_acc, 4),
                                                           round(r.test_acc_ci_low, 4),
                                                           round(r.test_acc_ci_high, 4)]
                               for r in table.itertuples()}
    print(report.tables["comparisons"].to_string(), file=sys.stderr)
    if plots:
        from faultlab.workers.training.plots import plot

        Path(plots).mkdir(parents=True, exist_ok=True)
        for figure, fig in plot(report).items():
            fig.savefig(Path(plots) / f"recipes-{name}-{figure}.png", dpi=100)
    if name == "moex":
        out["moex_gain"] = _figure(summary, "recipe:moex-baseline")
        out["mixup_gain"] = _figure(summary, "recipe:mixup-baseline")
        if faults:
            options = spec["training"]["image"]["datasets"][0]["options"]
            for r in records:
                r.trial["dataset_options"] = options
            out["moex_sdc_rate_diff"] = _fault_diff(records, faults)
        return out
    out.update(_frequency_figures(report))
    return out


def _frequency_figures(report: Any) -> dict[str, Any]:
    """The frequency example's figures against the downsampled baseline and the full size."""
    summary, table = report.summary, report.tables["summary"]
    out: dict[str, Any] = {}
    base = "resnet_small-down32"
    out["frequency_vs_downsampled_acc_diff"] = _figure(
        summary, f"variant:resnet_small-freq48-{base}")
    out["frequency_half_vs_downsampled_acc_diff"] = _figure(
        summary, f"variant:resnet_small-freq24-{base}")
    full = _figure(summary, f"variant:resnet_small-spatial-{base}")
    freq = _figure(summary, f"variant:resnet_small-freq48-{base}")
    if full and freq:  # freq − full = (freq − down) − (full − down), per seed: recompute
        cells = report.tables["cells"]
        acc = cells.set_index(["variant", "seed"])["test_acc"]
        from faultlab.workers.training.analysis import paired_difference

        seeds = sorted(cells["seed"].unique())
        stat = paired_difference([(float(acc[("resnet_small-spatial", s)]),
                                   float(acc[("resnet_small-freq48", s)])) for s in seeds])
        out["frequency_vs_full_acc_diff"] = {"estimate": stat["estimate"],
                                             "ci": [stat["ci_low"], stat["ci_high"]],
                                             "pairs": int(stat["n"])}
    ratios = dict(zip(table["variant"], table["input_ratio"], strict=False))
    out["frequency_input_bytes_ratio"] = ratios.get("resnet_small-freq48")
    out["frequency_half_input_bytes_ratio"] = ratios.get("resnet_small-freq24")
    out["downsampled_input_bytes_ratio"] = ratios.get(base)
    for key in ("y_share", "low_share"):
        for k in (48, 24):
            out[f"frequency{k}_selected_{key}"] = summary.get(
                f"frequency:resnet_small-freq{k}:{key}")
    return out


def _hsi(quick: bool) -> dict[str, Any]:
    path = ROOT / "bench" / "_seed_hsi.py"
    if not path.exists():
        return {"hsi": "bench/_seed_hsi.py not present"}
    spec = importlib.util.spec_from_file_location("_seed_hsi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: dict[str, Any] = module.run(quick)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a reduced size (5 seeds)")
    parser.add_argument("--faults", type=int, default=0,
                        help="also inject this many weight bit flips per MoEx/baseline cell")
    parser.add_argument("--jobs", type=int, default=1, help="run the parts in N processes")
    parser.add_argument("--only", choices=["moex", "frequency", "hsi"], action="append")
    parser.add_argument("--plots", help="save the reports' figures as PNGs in this folder")
    args = parser.parse_args()
    parts = args.only or ["moex", "frequency", "hsi"]
    started = time.perf_counter()
    out: dict[str, Any] = {"size": "quick (reduced)" if args.quick else "examples as written",
                           "parts": parts}
    images = [p for p in parts if p != "hsi"]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_part, p, args.quick, args.faults, args.plots) for p in images]
        hsi = _hsi(args.quick) if "hsi" in parts else {}
        for future in futures:
            out.update(future.result())
    out.update(hsi)
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
