"""Watermark benchmark: the frequency-sensitivity watermark (arXiv 2208.03944) against the Adi
et al. 2018 baseline on scikit-learn digits with ``digits_cnn``, through the reference loop.

1. **Main campaign** — schemes ``frequency`` and ``adi``, 3 seeds, 100 triggers each, 10
   independently trained null models, attacks: global magnitude pruning (sparsity 0.2–0.95)
   and fine-tuning on the attacker's third of the training data — FTAL at lr 1e-3 and 1e-2 and
   RTAL (re-initialised head with K outputs), 1–20 epochs.
2. **shapes32** — the frequency scheme on the generated 3×32×32 set (one seed, 2 null models,
   input-side attacks), so the frequency analysis has room (514 distinct components).
3. **Reuse check** — a 20-cell sweep (frequency scheme, one seed, 4 attacks × 5 strengths) in a
   fresh ``$FAULTLAB_HOME``: the watermarked model must be embedded exactly once.

Prints tables and, last, one JSON line with

* ``clean_acc_drop`` — test-accuracy points the frequency watermark costs (mean over seeds;
  target ≤ 1), ``trigger_acc`` (target ≥ 0.95) and ``p_value`` (largest over seeds; target
  ≤ 1e-6) of the watermarked models;
* ``false_claims`` — ownership claims on the 10 null models × every key (target 0);
* ``embed_reuse`` — the 20-cell sweep embedded once (true/false) and ``embeddings_computed``;
* ``break_points`` — per scheme, the weakest pruning sparsity / fine-tuning epochs at which most
  seeds fail verification while test accuracy drops < 5 points (null: not broken in the sweep);
  ``residual_wm_acc`` — watermark accuracy left at the strongest in-budget strength.

Run: ``python bench/watermark.py [--device cuda]`` (a few minutes on 2 cores; one torch
thread). ``--device`` moves each campaign's context there first, as a Ray worker on that device
does (``WatermarkEngine.to_device``); the default, ``cpu``, runs the reference loop unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import pandas as pd
import torch

from faultlab.report import Report
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.engine import TrialRecord, configure_device
from faultlab.workers.local import run_local

MAIN = {
    "kind": "watermark",
    "name": "bench-watermark",
    "seed": 0,
    "model": {"name": "digits_cnn"},
    "dataset": {"name": "digits"},
    "watermark": {
        "schemes": [{"name": "frequency"}, {"name": "adi"}],
        "seeds": 3,
        "trigger_size": 100,
        "verification": {"null_models": 10},
        "attacks": [
            {"name": "prune", "strengths": [0.2, 0.4, 0.6, 0.8, 0.9, 0.95]},
            {"name": "ftal", "strengths": [1, 2, 5, 10, 20]},
            {"name": "ftal", "strengths": [1, 2, 5, 10, 20], "params": {"lr": 0.01}},
            {"name": "rtal", "strengths": [1, 2, 5, 10, 20]},
        ],
    },
}

SHAPES = {
    "kind": "watermark",
    "seed": 0,
    "model": {"name": "digits_cnn", "options": {"epochs": 30}},
    "dataset": {"name": "shapes32"},
    "watermark": {
        "schemes": [{"name": "frequency"}],
        "seeds": 1,
        "trigger_size": 100,
        "sensitivity": {"probe_size": 64, "repeats": 1},
        "verification": {"null_models": 2},
        "attacks": [{"name": "jpeg", "strengths": [70, 30]},
                    {"name": "lowpass", "strengths": [0.5]},
                    {"name": "bandstop", "strengths": [0.2]}],
    },
}

REUSE = {
    "kind": "watermark",
    "seed": 0,
    "model": {"name": "digits_cnn"},
    "dataset": {"name": "digits"},
    "watermark": {
        "schemes": [{"name": "frequency"}],
        "seeds": 1,
        "verification": {"null_models": 0},
        "attacks": [{"name": "jpeg"}, {"name": "gaussian_noise"}, {"name": "prune"},
                    {"name": "weight_quantization"}],
    },
}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value


def show(table: pd.DataFrame, columns: list[str] | None = None) -> None:
    """Prints a report table (or some of its columns) to stderr."""
    print((table if columns is None else table[columns]).to_string(index=False), file=sys.stderr)


def residual_watermark(
    robustness: pd.DataFrame, budget: float
) -> dict[str, dict[str, float | None]]:
    """Per scheme and attack: mean watermark accuracy at the strongest swept strength whose
    test-accuracy drop stays under the budget (how much of the watermark an in-budget attacker
    leaves), or None when no strength stays in budget."""
    out: dict[str, dict[str, float | None]] = {}
    for (scheme, attack), group in robustness.groupby(["scheme", "attack"], sort=False):
        within = group[group["test_acc_drop"] < budget]
        value = None if within.empty else round(float(within.iloc[-1]["wm_acc"]), 3)
        out.setdefault(str(scheme), {})[str(attack)] = value
    return out


def run_on(spec: dict[str, Any], device: torch.device) -> tuple[Report, list[TrialRecord]]:
    """The reference loop (``run_local``) with the campaign's context on ``device`` first."""
    if device.type == "cpu":
        return run_local(spec)
    parsed = parse_spec(spec)
    engine = get_engine(parsed.kind)
    engine.validate(parsed)
    prepared = engine.prepare(parsed)
    configure_device(device, parsed.execution.allow_tf32)
    context = engine.to_device(prepared.context, device)
    records: list[TrialRecord] = []
    round_index = 0
    while trials := engine.plan(parsed, prepared.meta, round_index, list(records)):
        pairs = engine.keyed(parsed, prepared.meta, trials)
        results = engine.run_shard(context, [t for _, t in pairs])
        records += [TrialRecord(k, t, r) for (k, t), r in zip(pairs, results, strict=True)]
        round_index += 1
    return engine.aggregate(parsed, prepared.meta, records), records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="where the shards run (cpu, cuda)")
    device = torch.device(parser.parse_args().device)
    torch.set_num_threads(1)  # tiny CNNs: one thread beats two contended ones
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="faultlab-bench-wm-") as home:
        os.environ["FAULTLAB_HOME"] = home
        report, _ = run_on(MAIN, device)
        main_seconds = time.perf_counter() - started
        show(report.tables["embeddings"])
        show(report.tables["calibration"])
        show(report.tables["robustness"], ["scheme", "attack", "strength", "wm_acc", "test_acc",
                                          "test_acc_drop", "verified_rate", "p_value_max"])
        show(report.tables["break_points"],
             ["scheme", "attack", "break_strength", "seed_break_strengths"])
        shapes, _ = run_on(SHAPES, device)
        show(shapes.tables["embeddings"])
        show(shapes.tables["cells"], ["attack", "strength", "wm_acc", "test_acc", "p_value"])
        with tempfile.TemporaryDirectory(prefix="faultlab-bench-wm-reuse-") as reuse_home:
            from faultlab.workers.watermark import cache

            os.environ["FAULTLAB_HOME"] = reuse_home
            cache.forget_memory()
            reuse, _ = run_on(REUSE, device)
            log_lines = cache.log_path().read_text().splitlines()
        os.environ["FAULTLAB_HOME"] = home
    summary = report.summary
    freq, adi = summary["schemes"]["frequency"], summary["schemes"]["adi"]
    shapes_freq = shapes.summary["schemes"]["frequency"]
    embeddings = report.tables["embeddings"]
    result = {
        "dataset": "digits",
        "model": "digits_cnn",
        "seeds": 3,
        "trigger_size": 100,
        "clean_acc_drop": round(freq["clean_acc_drop"]["mean"], 3),
        "clean_acc_drop_ci": [round(freq["clean_acc_drop"]["ci_low"], 3),
                              round(freq["clean_acc_drop"]["ci_high"], 3)],
        "trigger_acc": round(freq["trigger_acc"]["rate"], 4),
        "p_value": freq["p_value_max"],
        "psnr_db": round(freq["psnr"]["mean"], 2),
        "ssim": round(freq["ssim"]["mean"], 4),
        "adi_clean_acc_drop": round(adi["clean_acc_drop"]["mean"], 3),
        "adi_trigger_acc": round(adi["trigger_acc"]["rate"], 4),
        "adi_p_value": adi["p_value_max"],
        "false_claims": summary["false_claims"],
        "false_claim_tests": int(summary["false_claim_rate"]["n"]),
        "null_models": summary["null_models"],
        "alpha": summary["alpha"],
        "embed_reuse": (bool(reuse.summary["embed_reuse"])
                        and reuse.summary["embeddings_computed"] == 1),
        "embed_reuse_cells": reuse.summary["attack_cells"],
        "embeddings_computed": reuse.summary["embeddings_computed"],
        "embed_log_lines": sum(json.loads(line)["kind"] == "embedding" for line in log_lines),
        "main_embeddings_computed": summary["embeddings_computed"],
        "main_embed_cells": summary["embed_cells"],
        "break_points": {
            scheme: {attack: _clean(value) for attack, value in attacks.items()}
            for scheme, attacks in summary["break_points"].items()
        },
        "residual_wm_acc": residual_watermark(report.tables["robustness"], 5.0),
        "base_test_acc": round(float(embeddings["base_test_acc"].mean()), 4),
        "shapes32": {
            "base_test_acc": round(float(shapes.tables["embeddings"]["base_test_acc"].mean()), 4),
            "clean_acc_drop": round(shapes_freq["clean_acc_drop"]["mean"], 3),
            "trigger_acc": round(shapes_freq["trigger_acc"]["rate"], 4),
            "p_value": shapes_freq["p_value_max"],
            "psnr_db": round(shapes_freq["psnr"]["mean"], 2),
            "ssim": round(shapes_freq["ssim"]["mean"], 4),
            "false_claims": shapes.summary["false_claims"],
        },
        "main_seconds": round(main_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "torch_threads": 1,
        "device": str(device),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
