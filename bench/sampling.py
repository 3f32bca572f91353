"""Benchmark of operational-accuracy sampling (DAIC): estimators vs simple random sampling, and
the improvement cycle vs a random-label control.

The operational pool is realistic and shifted: ``digits_cnn`` is trained on the digits
training split minus a 25 % held-out slice; the pool is the test split plus that slice, each
clean and under six corruptions (Gaussian noise, blur, rotation, occlusion, salt-and-pepper,
contrast) — ≈ 6,000 inputs on which the model (≈ 96 % on the clean test split) is ≈ 88 %
accurate, its failures concentrated where its confidence is low.

1. **Replay** — every sampler × budgets 50, 100, 200, 400, 800 × 200 repetitions on the fully
   labelled pool: bias, RMSE, 95 % CI coverage and width, labels saved at equal RMSE,
   mispredictions found.
2. **Improve** — 3 DAIC iterations of 200 labels (assess → label → fine-tune), the DAIC arm
   against a control that labels random inputs, 5 repetitions, true operational accuracy on
   a never-labelled 30 % evaluation slice of the pool.

Both campaigns run through ``run_local`` (the reference loop), the improve campaign in a second
process so the two cores work at once. The last line printed is one JSON object:
``rmse_ratio_vs_srs`` (best sampler's RMSE ÷ SRS's at budget 200; target ≤ 0.67),
``coverage`` (its 95 % CI coverage; target 0.93–0.97), ``labels_saved`` (labels SRS would need
for the same RMSE minus those spent) and ``daic_gain`` (accuracy after 3 iterations minus the
control's).

Usage: ``python bench/sampling.py [--repetitions 200] [--improve-repetitions 5] [--plots DIR]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from typing import Any

# One BLAS/OpenMP thread per process: the two campaigns run side by side on two cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

POOL: dict[str, Any] = {
    "holdout_fraction": 0.25,
    "shifts": [
        {"name": "clean"},
        {"name": "gaussian_noise", "severity": 0.4},
        {"name": "blur", "severity": 0.5},
        {"name": "rotate", "severity": 0.4},
        {"name": "occlusion", "severity": 0.3},
        {"name": "salt_pepper", "severity": 0.3},
        {"name": "contrast", "severity": 0.7},
    ],
}

SAMPLERS: list[dict[str, Any]] = [
    {"name": "srs"},
    {"name": "stratified", "allocation": "proportional", "oracle": "msp"},
    {"name": "stratified", "allocation": "neyman", "oracle": "msp"},
    {"name": "stratified", "allocation": "neyman", "oracle": "ensemble"},
    {"name": "stratified", "allocation": "neyman", "oracle": "dsa"},
    {"name": "pps", "estimator": "hh", "oracle": "msp"},
    {"name": "pps", "estimator": "ht", "oracle": "ensemble"},
    {"name": "deepest", "oracle": "msp"},
    {"name": "ces"},
    {"name": "difference", "oracle": "ensemble"},
    {"name": "ppi", "oracle": "ensemble"},
]

DAIC_ARM: dict[str, Any] = {"name": "pps", "estimator": "ht", "oracle": "ensemble"}


def campaign(mode: str, **section: Any) -> dict[str, Any]:
    return {
        "kind": "sampling", "name": f"bench-sampling-{mode}", "seed": 0,
        "model": {"name": "digits_cnn"}, "dataset": {"name": "digits"},
        "sampling": {"mode": mode, "pool": POOL, **section},
    }


def run_improve(spec: dict[str, Any], queue: Any) -> None:
    import torch

    torch.set_num_threads(1)
    from faultlab.workers.local import run_local

    started = time.perf_counter()
    report, _ = run_local(spec)
    queue.put((report.to_json(), time.perf_counter() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--improve-repetitions", type=int, default=5)
    parser.add_argument("--plots", default=None, help="directory for the PNG plots")
    args = parser.parse_args()

    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from faultlab.report import Report
    from faultlab.spec import parse_spec
    from faultlab.workers import get_engine
    from faultlab.workers.local import run_local

    started = time.perf_counter()
    replay_spec = campaign("replay", samplers=SAMPLERS, repetitions=args.repetitions)
    improve_spec = campaign(
        "improve", budget=200, samplers=[DAIC_ARM], oracles=["msp", "ensemble"],
        improve={"iterations": 3, "repetitions": args.improve_repetitions},
    )
    # Warm the caches once (zoo models, ensemble members, pseudo-oracle scores) so the two
    # campaigns below do not train the same models twice.
    engine = get_engine("sampling")
    warm = time.perf_counter()
    prepared = engine.prepare(parse_spec(replay_spec))
    prepare_seconds = time.perf_counter() - warm

    queue: Any = mp.get_context("spawn").Queue()
    worker = mp.get_context("spawn").Process(target=run_improve, args=(improve_spec, queue))
    worker.start()
    replay_started = time.perf_counter()
    replay, records = run_local(replay_spec)
    replay_seconds = time.perf_counter() - replay_started
    improve_json, improve_seconds = queue.get()
    worker.join()
    improve = Report.from_json(improve_json)

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(f"pool: {replay.summary['pool_size']} inputs, true operational accuracy "
          f"{replay.summary['true_accuracy']:.4f} (clean test split "
          f"{replay.summary['test_accuracy']:.4f})")
    print(replay.table("pool", readable=False).to_string(index=False))
    print("\npseudo-oracles (misprediction AUROC; online estimate = mean p_correct):")
    print(replay.table("oracles", readable=False).to_string(index=False))
    table = replay.table("replay", readable=False)
    columns = ["sampler", "budget", "bias", "rmse", "rmse_ratio_vs_srs", "coverage", "ci_width",
               "labels_saved", "mispredictions_found"]
    for budget in sorted(table["budget"].unique()):
        print(f"\nreplay, budget {budget} ({args.repetitions} repetitions):")
        rows = table[table["budget"] == budget].sort_values("rmse")
        print(rows[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nDAIC improvement cycle (true accuracy on the never-labelled evaluation slice):")
    print(improve.table("daic_summary", readable=False)[
        ["arm", "iteration", "labels_total", "operational_accuracy", "operational_ci_low",
         "operational_ci_high", "estimate", "abs_error_vs_estimand", "mispredictions_found",
         "gain_vs_control", "gain_ci_low", "gain_ci_high"]
    ].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.plots:
        paths = replay.save_plots(args.plots) + improve.save_plots(args.plots)
        print("\nplots:", ", ".join(str(p) for p in paths))

    s, d = replay.summary, improve.summary
    srs200 = table[(table["sampler"] == "srs") & (table["budget"] == s["reference_budget"])]
    result = {
        "rmse_ratio_vs_srs": s["best_rmse_ratio_vs_srs"],
        "rmse_ratio_vs_srs_theory": s["best_rmse_ratio_vs_srs_theory"],
        "best_sampler": s["best_sampler"],
        "budget": s["reference_budget"],
        "best_rmse": s["best_rmse"],
        "srs_rmse": float(srs200["rmse"].iloc[0]),
        "coverage": s["best_coverage"],
        "coverage_ci": [s["best_coverage_ci_low"], s["best_coverage_ci_high"]],
        "ci_width": s["best_ci_width"],
        "labels_saved": s["best_labels_saved"],
        "labels_saved_fraction": s["best_labels_saved_fraction"],
        "srs_equivalent_labels": s["best_srs_equivalent_labels"],
        "mispredictions_found": s["best_mispredictions_found"],
        "srs_mispredictions_found": float(srs200["mispredictions_found"].iloc[0]),
        "daic_gain": d["daic_gain"],
        "daic_gain_ci": [d["daic_gain_ci_low"], d["daic_gain_ci_high"]],
        "daic_arm": d["daic_arm"],
        "daic_final_accuracy": d["final_accuracy"][d["daic_arm"]],
        "control_final_accuracy": d["final_accuracy"][d["control"]],
        "initial_accuracy": d["initial_accuracy"],
        "true_accuracy": s["true_accuracy"],
        "pool_size": s["pool_size"],
        "repetitions": args.repetitions,
        "replay_trials": len(records),
        "improve_repetitions": args.improve_repetitions,
        "oracle_scoring_seconds": prepared.meta["oracle_scoring_seconds"],
        "prepare_seconds": prepare_seconds,
        "replay_seconds": replay_seconds,
        "improve_seconds": improve_seconds,
        "seconds": time.perf_counter() - started,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
