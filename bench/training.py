"""Training benchmark: the two founding claims on a medium sweep, and Ray scaling of a sweep.

Run: ``python bench/training.py [dynamics] [sgc] [scaling]`` (default: all; 2 cores, CPU; a
scaling figure is only meaningful on an otherwise idle machine). Progress goes to stderr;
the last stdout line is one JSON object with:

* ``skip_speedup`` (+ ``skip_speedup_ci``) — steps to 10 % of the initial training loss
  without ÷ with residual skips at the deepest depth (8), geometric mean over (variant,
  dataset, seed) pairs (Xu et al., ICML 2021: > 1 when skips accelerate training);
  ``skip_speedup_all_depths`` (+ CI) pools depths 2, 4 and 8;
* ``depth_speedup`` (+ CI) — the same ratio, depth 2 ÷ depth 8 (``_no_skip`` and
  ``_residual``: within each skip setting);
* ``linear_nonlinear_rank_agreement`` — Kendall τ of the variants' rankings, linearized vs
  ReLU, averaged over datasets; ``linear_rate_r2_median`` — R² of log loss vs step;
* ``sgc_gcn_acc_diff`` (+ CI) — test accuracy SGC − 2-convolution GCN, paired over seeds
  (Wu et al., ICML 2019: ≈ 0); ``sgc_gcn_time_ratio`` (+ CI) — training time GCN ÷ SGC,
  precomputation counted (> 1: SGC faster);
* ``two_worker_scaling`` — training-sweep throughput with 2 Ray workers ÷ with 1, next to
  ``control_two_process_scaling`` (the machine's own ceiling for two processes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

DATASETS = [{"name": "karate"},
            {"name": "sbm", "label": "sbm200", "options": {"num_nodes": 200, "feature_dim": 32}}]


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _figure(summary: dict[str, Any], name: str) -> tuple[float, list[float]]:
    entry = summary[name]
    return round(entry["estimate"], 4), [round(v, 4) for v in entry["ci"]]


def dynamics() -> dict[str, Any]:
    """Linear and ReLU GCNs, depths 2 / 4 / 8, with and without residual skips, 5 seeds."""
    from faultlab.workers.local import run_local

    report, records = run_local({"kind": "training", "training": {
        "variants": [{"family": ["gcn"], "depth": [2, 4, 8], "skip": ["none", "residual"],
                      "linear": [True, False]}],
        "recipes": [{"name": "adam", "optimizer": "adam", "lr": 0.01, "epochs": 200}],
        "datasets": DATASETS, "seeds": 5, "targets": {"loss_ratio": 0.1}}})
    s = report.summary
    out: dict[str, Any] = {"cells": len(records)}
    for name, figure in (("skip_speedup", "skip:residual@d8"),
                         ("skip_speedup_all_depths", "skip:residual"),
                         ("depth_speedup", "depth:2->8"),
                         ("depth_speedup_no_skip", "depth:2->8@none"),
                         ("depth_speedup_residual", "depth:2->8@residual")):
        out[name], out[f"{name}_ci"] = _figure(s, figure)
    out["linear_nonlinear_rank_agreement"] = round(s["linear_nonlinear_rank_agreement"], 4)
    out["linear_rate_r2_median"] = round(s["linear_rate_r2_median"], 4)
    log(f"dynamics: {out}")
    return out


def sgc() -> dict[str, Any]:
    """SGC K = 1..3 vs the GCN, 10 seeds, one recipe and budget for both."""
    from faultlab.workers.local import run_local

    report, records = run_local({"kind": "training", "training": {
        "variants": [{"family": ["sgc"], "depth": [1, 2, 3]},
                     {"family": ["gcn"], "depth": [2], "skip": ["none"], "linear": [False]}],
        "recipes": [{"name": "adam", "optimizer": "adam", "lr": 0.05, "epochs": 200,
                     "weight_decay": 5e-4}],
        "datasets": DATASETS, "seeds": 10}})
    acc, acc_ci = _figure(report.summary, "sgc-gcn:test_acc")
    ratio, ratio_ci = _figure(report.summary, "sgc-gcn:time")
    out = {"cells": len(records), "sgc_gcn_acc_diff": acc, "sgc_gcn_acc_diff_ci": acc_ci,
           "sgc_gcn_time_ratio": ratio, "sgc_gcn_time_ratio_ci": ratio_ci}
    log(f"sgc: {out}")
    return out


def _spin(_: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i * i % 7
    return time.perf_counter() - start


def control_scaling() -> float:
    """The machine's own 2-process scaling on pure-Python work (the ceiling here)."""
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
    """A 32-cell training sweep as Ray tasks (one cell per task), 1 worker vs 2."""
    import ray

    from faultlab.spec import parse_spec
    from faultlab.workers import get_engine

    spec = parse_spec({"kind": "training", "training": {
        "variants": [{"family": ["gcn"], "depth": [2, 4], "skip": ["none", "residual"],
                      "linear": [True, False]}],
        "recipes": [{"optimizer": "adam", "lr": 0.01, "epochs": 600}],
        "datasets": DATASETS[1:], "seeds": 4}})
    engine = get_engine("training")
    prepared = engine.prepare(spec)
    trials = engine.plan(spec, prepared.meta, 0, [])
    # address="local": a fresh 2-CPU instance, never a cluster another job started here.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})
    try:
        context = ray.put(prepared.context)

        @ray.remote(num_cpus=1)
        def run(ctx: Any, batch: list[dict[str, Any]]) -> int:
            return len(get_engine("training").run_shard(ctx, batch))

        ray.get([run.remote(context, trials[:1]) for _ in range(4)])  # warm both workers

        def throughput(workers: int) -> float:
            start = time.perf_counter()
            pending: list[Any] = []
            done = 0
            for trial in trials:
                if len(pending) >= workers:
                    ready, pending = ray.wait(pending, num_returns=1)
                    done += sum(ray.get(ready))
                pending.append(run.remote(context, [trial]))
            done += sum(ray.get(pending))
            return done / (time.perf_counter() - start)

        one = max(throughput(1) for _ in range(2))
        two = max(throughput(2) for _ in range(2))
    finally:
        ray.shutdown()
    out = {"trials": len(trials), "one_worker_cells_per_s": round(one, 3),
           "two_worker_cells_per_s": round(two, 3), "two_worker_scaling": round(two / one, 3),
           "control_two_process_scaling": round(control_scaling(), 3)}
    log(f"scaling: {out}")
    return out


def main(sections: list[str]) -> None:
    chosen = set(sections) or {"dynamics", "sgc", "scaling"}
    started = time.perf_counter()
    out: dict[str, Any] = {"bench": "training", "cpus": os.cpu_count()}
    if "dynamics" in chosen:
        out.update(dynamics())
        out["dynamics_cells"] = out.pop("cells")
    if "sgc" in chosen:
        out.update(sgc())
        out["sgc_cells"] = out.pop("cells")
    if "scaling" in chosen:
        out.update(scaling())
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
