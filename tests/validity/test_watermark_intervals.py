"""Watermark report intervals respect [0, 1], and one seed gives no interval (issue 12 item 3)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from faultlab.stats import mean_with_ci
from faultlab.workers.watermark.params import WatermarkParams
from faultlab.workers.watermark.report import _robustness
from tests.validity.conftest import coverage_tolerance, repetitions


def test_one_value_gives_no_interval() -> None:
    one = mean_with_ci([0.7])
    assert one["mean"] == 0.7 and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])


def _cells(wm: list[int], test: list[int], base: list[int], n: int = 50,
           test_n: int = 200) -> pd.DataFrame:
    return pd.DataFrame([{
        "scheme": "adi", "attack": "prune", "attack_index": 0, "strength": 0.5, "seed": s,
        "wm_acc": m / n, "matches": m, "n": n, "test_acc": t / test_n, "test_correct": t,
        "test_n": test_n, "wm_test_correct": b, "test_acc_drop": 100 * (b - t) / test_n,
        "verified": m > 20, "p_value": 0.5,
    } for s, (m, t, b) in enumerate(zip(wm, test, base, strict=True))])


def test_robustness_intervals_stay_in_unit_interval() -> None:
    params = WatermarkParams.model_validate(
        {"schemes": [{"name": "adi"}], "attacks": [{"name": "prune", "strengths": [0.5]}]}
    )
    # Two seeds far apart: a t interval over 2 seeds is [-0.82, 1.68]-wide.
    rows, _ = _robustness(_cells([2, 48], [40, 190], [40, 190]), params, ["prune"])
    row = rows.iloc[0]
    for name in ("wm_acc", "test_acc"):
        assert 0.0 <= row[f"{name}_ci_low"] <= row[name] <= row[f"{name}_ci_high"] <= 1.0
    assert row["test_acc_drop"] == 0.0  # identical counts: exactly 0, not -3.7e-15
    single, _ = _robustness(_cells([30], [150], [151]), params, ["prune"])
    assert single.iloc[0]["wm_acc_ci_low"] < single.iloc[0]["wm_acc_ci_high"]


def test_pooled_trigger_accuracy_covers() -> None:
    """The pooled Wilson interval of trigger accuracy over seeds covers the rate at nominal."""
    params = WatermarkParams.model_validate(
        {"schemes": [{"name": "adi"}], "attacks": [{"name": "prune", "strengths": [0.5]}]}
    )
    rng = np.random.default_rng(5)
    reps, covered, truth = repetitions(200), 0, 0.93
    for _ in range(reps):
        wm = rng.binomial(50, truth, 3).tolist()
        rows, _ = _robustness(_cells(wm, [150] * 3, [150] * 3), params, ["prune"])
        covered += rows.iloc[0]["wm_acc_ci_low"] <= truth <= rows.iloc[0]["wm_acc_ci_high"]
    assert covered / reps >= 0.95 - coverage_tolerance(0.95, reps)
