"""Sparsity benchmark: mask correctness, Ray scaling of a sensitivity scan, realized speedup of
structured pruning, and dense vs pruned fault resilience on the identical fault plan.

Run: ``python bench/sparsity.py [masks] [scaling] [speedup] [compose]`` (default: all; 2 cores,
CPU; a scaling figure is only meaningful on an otherwise idle machine). Progress goes to stderr;
the LAST line of stdout is one JSON object:

* ``masks_match_torch_prune`` — layer-wise and global magnitude masks equal
  ``torch.nn.utils.prune.l1_unstructured`` / ``global_unstructured`` on digits_cnn,
  resnet_small and GCN/SAGE/GIN (PyG) weights at several sparsities;
* ``two_worker_scaling`` — sensitivity-scan throughput (trials/s) with 2 Ray workers ÷ with 1
  (same shards, ``engine.run_shard`` as ``ray.remote(num_cpus=1)`` tasks, 1 thread each),
  next to ``control_two_process_scaling``, the same ratio for two plain Python processes — what
  the machine itself allows at that moment (≈ 2 when idle, ≈ 1 when other jobs hold a core);
* ``realized_speedup`` — measured CPU speedup (dense latency ÷ slimmed latency, batch 256,
  one thread, fastest of 40 interleaved forwards; 2 epochs of fine-tuning for the accuracy) of
  the best structured setting (L1/L2 × layer/global) at 50 % of channels on resnet_small, next
  to its masked twin's and the theoretical (MAC) speedup;
* ``dense_vs_pruned_sdc_ratio`` — SDC rate of the dense digits_cnn ÷ that of its 50 %
  magnitude-pruned twin, same 1,000 uniformly drawn single bit flips in the weights.

Ratios only: absolute times depend on the machine.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import warnings
from typing import Any

warnings.filterwarnings("ignore")


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def masks_match() -> bool:
    import torch
    from torch.nn.utils import prune

    from faultlab.spec import DatasetSpec, ModelSpec
    from faultlab.workers.transforms import run_transform
    from faultlab.workers.transforms._common import weight_layers
    from faultlab.workers.zoo import build_model, load_dataset

    ok = True
    cases = [
        ("digits_cnn", "digits"), ("resnet_small", "digits"),
        ("gcn", "sbm"), ("sage", "sbm"), ("gin", "sbm"),
    ]
    for model_name, dataset in cases:
        data = load_dataset(DatasetSpec.model_validate({"name": dataset}))
        torch.manual_seed(1)
        model = build_model(ModelSpec.model_validate({"name": model_name}), data).eval()
        for sparsity in (0.2, 0.5, 0.8, 0.95):
            mine = run_transform("magnitude", copy.deepcopy(model), data, {"sparsity": sparsity})
            ref = copy.deepcopy(model)
            for layer in weight_layers(ref):
                prune.l1_unstructured(layer.module, "weight", amount=sparsity)
            ok &= all(
                torch.equal(a.weight != 0, b.module.weight_mask.bool())
                for a, b in zip(weight_layers(mine), weight_layers(ref), strict=True)
            )
            mine = run_transform(
                "global_magnitude", copy.deepcopy(model), data, {"sparsity": sparsity}
            )
            ref = copy.deepcopy(model)
            layers = weight_layers(ref)
            prune.global_unstructured(
                [(x.module, "weight") for x in layers], prune.L1Unstructured, amount=sparsity
            )
            ok &= all(
                torch.equal(a.weight != 0, b.module.weight_mask.bool())
                for a, b in zip(weight_layers(mine), layers, strict=True)
            )
        log(f"masks {model_name}: {'match' if ok else 'DIFFER'}")
    return bool(ok)


def _spin(_: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i * i % 7
    return time.perf_counter() - start


def control_scaling() -> float:
    """The machine's own 2-process scaling on pure-Python work (no torch, no Ray): the ceiling
    any 2-worker figure can reach here. On an idle 2-core machine it is ≈ 2."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [0, 1])
        start = time.perf_counter()
        pool.map(_spin, [0])
        one = time.perf_counter() - start
        start = time.perf_counter()
        pool.map(_spin, [0, 1])
        two = time.perf_counter() - start
    return 2.0 * one / two


def scaling() -> dict[str, Any]:
    """Sensitivity scan of resnet_small (every layer × 20 levels), as Ray tasks."""
    import ray

    from faultlab.spec import parse_spec
    from faultlab.workers import get_engine

    spec = parse_spec({
        "kind": "sparsity", "model": {"name": "resnet_small"}, "dataset": {"name": "digits"},
        "sparsity": {"methods": ["magnitude"], "sensitivity": {
            "levels": [round(0.05 * i, 2) for i in range(1, 20)] + [0.97],
            "allocation_levels": [],
        }},
    })
    engine = get_engine("sparsity")
    prepared = engine.prepare(spec)
    trials = [t for t in engine.plan(spec, prepared.meta, 0, []) if t["type"] == "sensitivity"]
    shard = 10
    shards = [trials[i : i + shard] for i in range(0, len(trials), shard)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})
    try:
        context = ray.put(prepared.context)

        @ray.remote(num_cpus=1)
        def run(ctx: Any, batch: list[dict[str, Any]]) -> int:
            import torch

            torch.set_num_threads(1)
            return len(get_engine("sparsity").run_shard(ctx, batch))

        ray.get([run.remote(context, shards[0][:1]) for _ in range(4)])  # warm both workers

        def throughput(workers: int) -> float:
            start = time.perf_counter()
            pending: list[Any] = []
            done = 0
            for batch in shards:
                if len(pending) >= workers:
                    ready, pending = ray.wait(pending, num_returns=1)
                    done += sum(ray.get(ready))
                pending.append(run.remote(context, batch))
            done += sum(ray.get(pending))
            return done / (time.perf_counter() - start)

        one = [throughput(1) for _ in range(2)]
        two = [throughput(2) for _ in range(2)]
    finally:
        ray.shutdown()
    result = {"trials": len(trials), "one_worker_trials_per_s": max(one),
              "two_worker_trials_per_s": max(two),
              "control_two_process_scaling": control_scaling()}
    result["ratio"] = result["two_worker_trials_per_s"] / result["one_worker_trials_per_s"]
    log(f"scaling: {result}")
    return result


def structured_speedup() -> dict[str, Any]:
    from faultlab.workers.local import run_local

    report, _ = run_local({
        "kind": "sparsity", "model": {"name": "resnet_small"}, "dataset": {"name": "digits"},
        "sparsity": {
            "methods": ["channel_l1", "channel_l2"], "granularities": ["layer", "global"],
            "levels": {"values": [0.5]}, "seeds": 1, "finetune": {"epochs": 2.0},
            "quantization": {"int8": ["dynamic", "static"]},
            "latency": {"batch": 256, "repeats": 40, "warmup": 5, "threads": 1},
        },
    })
    cells = report.table(readable=False)
    structured = cells[cells["method"].isin(["channel_l1", "channel_l2"]) & (cells["level"] == 0.5)]
    best = structured.loc[structured["realized_speedup"].idxmax()]
    int8 = cells[cells["method"].isin(["int8_dynamic", "int8_static"])].set_index("method")
    result = {
        "setting": f"{best['method']}/{best['granularity']}",
        "realized_speedup": float(best["realized_speedup"]),
        "masked_speedup": float(best["masked_speedup"]),
        "theoretical_speedup": float(best["theoretical_speedup"]),
        "achieved_sparsity": float(best["achieved_sparsity"]),
        "accuracy": float(best["accuracy"]),
        "dense_accuracy": float(report.summary["dense_accuracy"]),
        "int8_static_speedup": float(int8.loc["int8_static", "realized_speedup"]),
        "int8_dynamic_speedup": float(int8.loc["int8_dynamic", "realized_speedup"]),
    }
    log(f"structured at 50%: {result}")
    return result


def composed() -> dict[str, Any]:
    from faultlab.workers.local import run_local

    report, _ = run_local({
        "kind": "sparsity", "model": {"name": "digits_cnn"}, "dataset": {"name": "digits"},
        "sparsity": {
            "methods": ["magnitude"], "levels": {"values": [0.5]}, "seeds": 1,
            "latency": {"repeats": 3},
            "compose": {
                "chains": [{"name": "magnitude50", "transforms": [
                    {"name": "magnitude", "params": {"sparsity": 0.5}},
                ]}],
                "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                           "trials": 1000},
            },
        },
    })
    comp = report.tables["composition"].set_index("variant")
    result = {
        "dense_sdc_rate": float(comp.loc["dense", "sdc_rate"]),
        "pruned_sdc_rate": float(comp.loc["magnitude50", "sdc_rate"]),
        "pruned_sdc_ci": [float(comp.loc["magnitude50", "sdc_ci_low"]),
                          float(comp.loc["magnitude50", "sdc_ci_high"])],
        "dense_sdc_ci": [float(comp.loc["dense", "sdc_ci_low"]),
                         float(comp.loc["dense", "sdc_ci_high"])],
        "ratio": float(comp.loc["magnitude50", "dense_vs_variant_sdc_ratio"]),
        "mcnemar_p": float(comp.loc["magnitude50", "mcnemar_p"]),
        "dense_critical_sdc_rate": float(comp.loc["dense", "critical_sdc_rate"]),
        "pruned_critical_sdc_rate": float(comp.loc["magnitude50", "critical_sdc_rate"]),
    }
    log(f"composition: {result}")
    return result


def main(sections: list[str]) -> None:
    """Runs every section (or those named on the command line: masks scaling speedup compose)."""
    chosen = set(sections) or {"masks", "scaling", "speedup", "compose"}
    started = time.perf_counter()
    out: dict[str, Any] = {"bench": "sparsity", "cpus": os.cpu_count()}
    if "masks" in chosen:
        out["masks_match_torch_prune"] = masks_match()
    if "scaling" in chosen:
        scale = scaling()
        out["two_worker_scaling"] = round(scale["ratio"], 3)
        out["scan_trials"] = scale["trials"]
        out["control_two_process_scaling"] = round(scale["control_two_process_scaling"], 3)
        out["scan_trials_per_s"] = {
            "one_worker": round(scale["one_worker_trials_per_s"], 2),
            "two_workers": round(scale["two_worker_trials_per_s"], 2),
        }
    if "speedup" in chosen:
        speed = structured_speedup()
        out["realized_speedup"] = round(speed["realized_speedup"], 3)
        out["realized_speedup_detail"] = {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in speed.items()
        }
    if "compose" in chosen:
        try:
            comp = composed()
            out["dense_vs_pruned_sdc_ratio"] = round(comp["ratio"], 3)
            out["composition_detail"] = {
                k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in comp.items()
            }
        except ImportError as exc:  # the fault engine is a separate package of the repo
            out["dense_vs_pruned_sdc_ratio"] = None
            out["composition_missing"] = str(exc)
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
