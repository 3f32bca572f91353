"""The sparsity report's cell intervals and paired test against dense (issue 12, item 13), on
synthetic cell records: identical seeds are one model (the test set's width, not √S less),
and every cell carries the paired comparison with the dense model on the same inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from faultlab.stats import wilson_interval
from faultlab.workers.sparsity.params import SparsityParams
from faultlab.workers.sparsity.report import cell_table


def _pack(mask: np.ndarray) -> str:
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def _runs(masks: np.ndarray, dense: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
    total = masks.shape[1]
    base = {"family": "pruning", "method": "magnitude", "granularity": "layer",
            "schedule": "one_shot", "level": 0.5, "level_kind": "sparsity", "error": None,
            "total": total, "achieved_sparsity": 0.5, "model_sparsity": 0.5, "weights": 10,
            "weights_nonzero": 5, "params": 10, "nonzeros": 5, "bytes": 40.0,
            "compression_ratio": 1.0, "macs": 1.0, "macs_effective": 1.0, "flops": 2.0,
            "aggregation_macs": 0.0, "theoretical_speedup": 1.0, "latency_seconds": 1.0,
            "realized_speedup": 1.0, "masked_speedup": math.nan}
    rows = [{**base, "seed": s, "correct": int(m.sum()), "accuracy": float(m.mean()),
             "correct_mask": _pack(m)} for s, m in enumerate(masks)]
    meta = {"dense": {"accuracy": float(dense.mean()), "correct_mask": _pack(dense)}}
    return pd.DataFrame(rows), meta


def test_identical_seeds_get_the_test_set_width_not_root_s_narrower() -> None:
    """Five seeds with identical predictions are one model: the interval is the Wilson width of
    the 300 test inputs, not that of 5 × 300 pooled counts."""
    rng = np.random.default_rng(0)
    one = rng.random(300) < 0.9
    runs, meta = _runs(np.repeat(one[None, :], 5, axis=0), rng.random(300) < 0.9)
    row = cell_table(runs, meta, SparsityParams()).iloc[0]
    lo, hi = wilson_interval(int(one.sum()), 300)
    assert row["accuracy_ci_high"] - row["accuracy_ci_low"] == pytest.approx(hi - lo, rel=0.05)
    assert row["accuracy_wilson_high"] - row["accuracy_wilson_low"] == pytest.approx(hi - lo)


def test_cells_carry_a_paired_test_against_dense() -> None:
    rng = np.random.default_rng(1)
    dense = rng.random(400) < 0.95
    worse = dense & (rng.random(400) < 0.9)  # loses about 10 % of dense's correct inputs
    runs, meta = _runs(np.stack([worse, worse]), dense)
    row = cell_table(runs, meta, SparsityParams()).iloc[0]
    assert row["accuracy_diff_vs_dense"] == pytest.approx(worse.mean() - dense.mean())
    assert row["accuracy_diff_ci_high"] < 0 and row["p_vs_dense"] < 1e-6
    assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]


def test_dense_baseline_gets_the_same_fine_tuning_budget() -> None:
    """Pruned cells fine-tune for ``finetune.epochs``; so must a dense baseline, or "pruned
    beats dense" only says that fine-tuning helps."""
    from faultlab.workers.sparsity.planning import sweep_cells

    params = SparsityParams(finetune={"epochs": 2.0}, levels={"values": [0.5]}, seeds=2)
    cells = sweep_cells(params, 7)
    baseline = [c for c in cells if c["method"] == "dense_finetuned"]
    pruned = [c for c in cells if c["family"] == "prune"]
    assert len(baseline) == 2 and {c["seed"] for c in baseline} == {7, 8}
    budget = {sum(c["finetune"]["epochs_per_step"] for _ in c["steps"]) for c in pruned}
    assert budget == {2.0}
    for c in baseline:
        assert c["steps"] == [[]] and c["finetune"]["epochs_per_step"] == 2.0
    assert not [c for c in sweep_cells(SparsityParams(), 7) if c["method"] == "dense_finetuned"]
