"""Accuracy intervals of sparsity cells and their paired comparison with the dense model.

A cell's accuracy varies with the seed (masks, calibration samples, fine-tuning order) *and*
with the test sample, which every seed shares. For ``S`` seeds on ``T`` test inputs with
``a_si`` = 1 when seed ``s`` classifies input ``i`` correctly, the estimate is the mean
accuracy ``ā = Σ a_si / (S T)`` and its variance has both parts (a one-way random-effects
decomposition; Searle, Casella & McCulloch, *Variance Components*, Wiley 1992, ch. 3):

``var = s²_seed / S + s²_input / T``, ``s²_seed`` the variance of the seeds' accuracies and
``s²_input`` that of the inputs' seed-averaged correctness ``ā_i``.

The interval is Wilson's (1927) at the Kish effective size ``ā (1 − ā) / var`` with the
Student quantile at Welch–Satterthwaite degrees of freedom (Satterthwaite 1946), so it stays
in [0, 1] and a deterministic method (identical seeds) gets the test-set width, not √S times
less. One seed gives only the test-set part, labelled as such.

The paired comparison with the dense model (evaluated on the same inputs) applies the same
decomposition to ``d_si = a_si − dense_i``: difference ``d̄``, its interval, and the two-sided
p-value of ``d̄ / sqrt(var)`` on the same Student distribution (a paired t-test over inputs
and seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from faultlab.stats import wilson_bounds


def pack_mask(correct: Sequence[bool]) -> str:
    """Per-input correctness as a hex string (8 inputs a byte)."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_mask(text: str, total: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:total].astype(bool)


def components(values: np.ndarray) -> tuple[np.ndarray, float]:
    """The seeds' means and the input part ``s²_input / T`` of an ``S × T`` array."""
    inputs = values.shape[1]
    input_part = float(values.mean(axis=0).var(ddof=1)) / inputs if inputs > 1 else 0.0
    return values.mean(axis=1), input_part


def binomial_part(mean: float, total: int) -> float:
    """The input part when per-input correctness was not recorded: ``ā (1 − ā) / T``."""
    return mean * (1.0 - mean) / total if total > 0 else 0.0


def _variance(seed_means: Sequence[float], input_part: float,
              inputs: int) -> tuple[float, float, float]:
    """Mean, variance of the mean (seed + input parts) and Welch–Satterthwaite df."""
    seeds = len(seed_means)
    seed_part = float(np.var(seed_means, ddof=1)) / seeds if seeds > 1 else 0.0
    var = seed_part + input_part
    terms = (seed_part**2 / (seeds - 1) if seeds > 1 else 0.0) + (
        input_part**2 / (inputs - 1) if inputs > 1 else 0.0)
    df = var * var / terms if terms > 0 else math.inf
    return float(np.mean(seed_means)), var, df


def _quantile(confidence: float, df: float) -> float:
    q = 0.5 + confidence / 2.0
    return float(stats.norm.ppf(q) if math.isinf(df) else stats.t.ppf(q, df))


def cell_interval(
    seed_means: Sequence[float], input_part: float, inputs: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean accuracy over seeds and its interval (see the module docstring)."""
    mean, var, df = _variance(seed_means, input_part, inputs)
    z = _quantile(confidence, df)
    if var <= 0.0:
        # every input right (or wrong) for every seed: Wilson on the test inputs
        return (mean, *wilson_bounds(mean, inputs, z))
    lo, hi = wilson_bounds(mean, mean * (1.0 - mean) / var, z)
    return mean, min(lo, mean), max(hi, mean)


def paired_vs_dense(
    masks: np.ndarray, dense: np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Accuracy difference (cell − dense) of ``S × T`` correctness against the dense model's
    ``T``, its interval and the paired test's p-value."""
    seed_means, input_part = components(masks.astype(float) - dense.astype(float)[None, :])
    mean, var, df = _variance(seed_means.tolist(), input_part, masks.shape[1])
    if var <= 0.0:
        return mean, mean, mean, 1.0 if mean == 0.0 else math.nan
    t = _quantile(confidence, df)
    half = t * math.sqrt(var)
    stat = abs(mean) / math.sqrt(var)
    p = float(2.0 * (stats.norm.sf(stat) if math.isinf(df) else stats.t.sf(stat, df)))
    return mean, max(-1.0, mean - half), min(1.0, mean + half), p


def _masks(ok: pd.DataFrame) -> np.ndarray | None:
    """``S × T`` per-input correctness of a cell's seeds (None when not recorded)."""
    if "correct_mask" not in ok or ok["correct_mask"].isna().any() or not len(ok):
        return None
    total = int(ok["total"].iloc[0])
    return np.stack([unpack_mask(str(m), total) for m in ok["correct_mask"]])


def accuracy_columns(ok: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """Accuracy, its interval over seeds and test inputs, and the paired test against the dense
    model (:mod:`~faultlab.workers.sparsity.intervals`)."""
    nan = math.nan
    out: dict[str, Any] = {"accuracy_diff_vs_dense": nan, "accuracy_diff_ci_low": nan,
                           "accuracy_diff_ci_high": nan, "p_vs_dense": nan}
    if not len(ok):
        return {**out, "accuracy": nan, "accuracy_ci_low": nan, "accuracy_ci_high": nan,
                "ci_method": "-"}
    accs = [float(a) for a in ok["accuracy"]]
    total = int(ok["total"].iloc[0])
    masks = _masks(ok)
    if masks is not None:
        seed_means, input_part = components(masks.astype(float))
        means = seed_means.tolist()
    else:
        means, input_part = accs, binomial_part(float(np.mean(accs)), total)
    acc, lo, hi = cell_interval(means, input_part, total)
    out.update(accuracy=acc, accuracy_ci_low=lo, accuracy_ci_high=hi,
               ci_method="seeds + test inputs" if len(accs) > 1 else "test inputs (one seed)")
    dense = meta["dense"].get("correct_mask")
    if masks is not None and dense is not None and ok["family"].iloc[0] != "dense":
        d, dlo, dhi, p = paired_vs_dense(masks, unpack_mask(dense, total))
        out.update(accuracy_diff_vs_dense=d, accuracy_diff_ci_low=dlo, accuracy_diff_ci_high=dhi,
                   p_vs_dense=p)
    return out
