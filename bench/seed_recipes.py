"""Three founding papers as training recipes (issue 15): MoEx, learning in the frequency
domain, hyperspectral GAN + CRF. Runs the examples in-process (the engine the service runs)
and prints their headline figures; the last stdout line is one JSON object.

* ``moex_gain`` — test accuracy MoEx − baseline, paired over seeds (examples/
  training-moex.yaml; Li et al., CVPR 2021), and ``mixup_gain`` likewise;
* ``moex_sdc_rate_diff`` — with ``--faults``: the SDC rate of weight bit flips on the MoEx
  cell − on the baseline cell, the identical fault plan (same architecture and fault seed),
  paired over seeds;
* ``moex_pruned_acc_diff`` — per global magnitude pruning level (0.5, 0.7, 0.9; one shot, no
  fine-tuning, a ``kind: sparsity`` campaign on each cell): test accuracy of the pruned MoEx
  cell − of the pruned baseline cell, the identical pruning and test inputs, paired over seeds
  (with both mean pruned accuracies), and ``retained_diff``: the same for the accuracy change
  by pruning (pruned − dense), i.e. robustness net of the dense gap;
* ``frequency_vs_downsampled_acc_diff`` — test accuracy of 48 learned DCT channels − spatial
  downsampling to the same input size (examples/training-frequency.yaml; Xu et al., CVPR
  2020), ``frequency_half_vs_downsampled_acc_diff`` for 24 channels (half the input),
  ``frequency_vs_full_acc_diff`` against the full-size images, ``frequency_input_bytes_ratio``
  (input bytes of 48 channels ÷ the full-size image's) and the selected channels' Y and
  low-frequency shares;
* ``frequency_views`` — per radial frequency band, the 48-channel variant's share of selected
  DCT channels next to the watermark engine's Fourier sensitivity (share of damage) of the
  full-size spatial model, first seed (the two frequency views of the seeds on one scale);
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


#: Global magnitude pruning levels of the MoEx-vs-baseline pruning robustness figure.
PRUNE_LEVELS = (0.5, 0.7, 0.9)


def _pruned_accuracy(record: Any, levels: tuple[float, ...]) -> dict[float, float]:
    """Test accuracy of one trained cell after one-shot global magnitude pruning at each
    level (no fine-tuning): a ``kind: sparsity`` campaign on the cell rebuilt as
    ``training:image`` from its checkpoint (what ``model: {from_campaign, cell}`` resolves
    to), evaluated on the full test split of the cell's dataset."""
    from faultlab.hashing import blob_digest
    from faultlab.workers.local import run_local
    from faultlab.workers.training.workloads import workload_of_trial
    from faultlab.workers.zoo.provided import provided_artifacts

    blob = record.result["checkpoint"]
    digest = blob_digest(blob)
    ref = workload_of_trial(record.trial).reference(record.trial)
    spec = {"kind": "sparsity", "name": "moex-pruning", "seed": 0,
            "model": {**ref, "file": digest},
            "dataset": {"name": "shapes32", "options": record.trial["dataset_options"],
                        "split": "test"},
            "sparsity": {"methods": ["magnitude"], "granularities": ["global"],
                         "levels": {"values": list(levels)}, "seeds": 1, "nm": [],
                         "latency": {"repeats": 1, "warmup": 0}}}
    with provided_artifacts({digest: blob}):
        _, records = run_local(spec)
    out: dict[float, float] = {}
    for r in records:
        t = r.trial
        if (t.get("type") == "cell" and t.get("method") == "magnitude"
                and t.get("granularity") == "global" and "accuracy" in r.result):
            out[float(t["level"])] = float(r.result["accuracy"])
    return out


def _pruning_diff(records: list[Any], levels: tuple[float, ...] = PRUNE_LEVELS
                  ) -> dict[str, Any]:
    """Pruned test accuracy on the MoEx cell − on the baseline cell, per seed and level: the
    identical pruning (global magnitude, one shot) and test inputs for both."""
    from faultlab.workers.training.analysis import paired_difference

    acc: dict[tuple[str, int], dict[float, float]] = {}
    dense: dict[tuple[str, int], float] = {}
    for r in records:
        recipe = r.trial["recipe"]["name"]
        if recipe in ("baseline", "moex") and r.result.get("status") == "completed":
            acc[(recipe, int(r.trial["seed"]))] = _pruned_accuracy(r, levels)
            dense[(recipe, int(r.trial["seed"]))] = float(r.result["test_acc"])
    seeds = sorted(s for (name, s) in acc if name == "baseline" and ("moex", s) in acc)
    out: dict[str, Any] = {}
    for level in levels:
        pairs = [(acc[("baseline", s)][level], acc[("moex", s)][level]) for s in seeds]
        stat = paired_difference(pairs)
        drop = paired_difference([(acc[("baseline", s)][level] - dense[("baseline", s)],
                                   acc[("moex", s)][level] - dense[("moex", s)]) for s in seeds])
        out[f"{level:g}"] = {"estimate": stat["estimate"], "ci": [stat["ci_low"], stat["ci_high"]],
                             "pairs": int(stat["n"]),
                             "baseline_acc": sum(a for a, _ in pairs) / max(len(pairs), 1),
                             "moex_acc": sum(b for _, b in pairs) / max(len(pairs), 1),
                             "retained_diff": {"estimate": drop["estimate"],
                                               "ci": [drop["ci_low"], drop["ci_high"]]}}
    return out


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
        options = spec["training"]["image"]["datasets"][0]["options"]
        for r in records:
            r.trial["dataset_options"] = options
        if faults:
            out["moex_sdc_rate_diff"] = _fault_diff(records, faults)
        out["moex_pruned_acc_diff"] = _pruning_diff(records)
        return out
    out.update(_frequency_figures(report))
    out.update(_frequency_views(spec, report, records, plots))
    return out


def _frequency_views(spec: dict[str, Any], report: Any, records: list[Any],
                     plots: str | None, probes: int = 32) -> dict[str, Any]:
    """The two frequency views side by side: the 48-channel variant's selected DCT channels
    and the watermark engine's Fourier sensitivity map of the full-size spatial model (first
    seed) on ``probes`` test images, per radial band (workers/training/frequency_views.py)."""
    from faultlab.hashing import blob_digest
    from faultlab.spec import DatasetSpec, ModelSpec
    from faultlab.workers.training.frequency_views import (
        frequency_views,
        sensitivity_frame,
        side_by_side,
    )
    from faultlab.workers.training.workloads import workload_of_trial
    from faultlab.workers.zoo import load_dataset
    from faultlab.workers.zoo.sources import build_model_from_source

    spatial = sorted((r for r in records if r.trial["variant"]["name"] == "resnet_small-spatial"
                      and r.result.get("status") == "completed"), key=lambda r: r.trial["seed"])
    channels = report.tables.get("channels")
    if not spatial or channels is None:
        return {"frequency_views": None}
    cell = spatial[0]
    dataset = spec["training"]["image"]["datasets"][0]
    data = load_dataset(DatasetSpec(name=dataset["name"], options=dataset["options"]))
    ref = workload_of_trial(cell.trial).reference(cell.trial)
    blob = cell.result["checkpoint"]
    digest = blob_digest(blob)
    model, _ = build_model_from_source(
        ModelSpec(name=ref["name"], options=ref["options"], file=digest), {digest: blob},
        data=data)
    x, y = data.split("test")
    sens = sensitivity_frame(model, x[:probes], y[:probes])
    views = frequency_views(channels, sens, variant="resnet_small-freq48")
    print(views.to_string(), file=sys.stderr)
    if plots:
        side_by_side(views).savefig(Path(plots) / "recipes-frequency-views.png", dpi=100)
    return {"frequency_views": [{k: (round(v, 4) if isinstance(v, float) else v)
                                 for k, v in row.items() if k != "variant"}
                                for row in views.to_dict("records")],
            "frequency_views_probe_images": probes}


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
