"""Accuracy figures of a classification map, and their intervals over seeds.

The three figures hyperspectral classification reports (e.g. Zhong et al. 2019, Tables
III–VI), computed on the test pixels with scikit-learn:

* overall accuracy ``OA = Σ_k n_kk / n`` (``accuracy_score``);
* average accuracy ``AA = (1/K) Σ_k n_kk / n_k·``, the mean per-class recall
  (``balanced_accuracy_score``);
* Cohen's ``κ = (p_o − p_e) / (1 − p_e)`` (J. Cohen, "A coefficient of agreement for
  nominal scales", *Educational and Psychological Measurement* 20, 1960;
  ``cohen_kappa_score``).

Across seeds each figure gets a Student-t interval of its mean, and a comparison of two
methods a paired t interval of the per-seed differences (:func:`faultlab.stats.mean_with_ci`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score

from faultlab.stats import mean_with_ci

FIGURES = ("oa", "aa", "kappa")
RANGES = {"oa": (0.0, 1.0), "aa": (0.0, 1.0), "kappa": (-1.0, 1.0)}
"""Where each figure can lie: its interval over seeds is clipped to it."""


def map_metrics(truth: np.ndarray, predicted: np.ndarray, classes: int) -> dict[str, object]:
    """``{"oa", "aa", "kappa", "per_class"}`` of predicted vs true labels (1-D, test
    pixels)."""
    labels = list(range(classes))
    per_class = [float(np.mean(predicted[truth == k] == k)) if np.any(truth == k)
                 else float("nan") for k in labels]
    return {"oa": float(accuracy_score(truth, predicted)),
            "aa": float(balanced_accuracy_score(truth, predicted)),
            "kappa": float(cohen_kappa_score(truth, predicted, labels=labels)),
            "per_class": per_class}


def over_seeds(values: Sequence[float], confidence: float = 0.95,
               bounds: tuple[float, float] = (-math.inf, math.inf)) -> dict[str, float]:
    """Mean and Student-t interval over seeds, clipped to ``bounds`` (the figure's range:
    a t interval of accuracies near 1 may otherwise pass 1)."""
    stat = mean_with_ci([float(v) for v in values], confidence)
    low, high = bounds
    if not math.isnan(stat["ci_low"]):
        stat["ci_low"], stat["ci_high"] = max(low, stat["ci_low"]), min(high, stat["ci_high"])
    return stat


def paired_gain(treated: dict[int, float], baseline: dict[int, float],
                confidence: float = 0.95) -> dict[str, float]:
    """Mean of ``treated[s] − baseline[s]`` over the seeds both have, with its paired t
    interval (``n`` = pairs)."""
    seeds = sorted(set(treated) & set(baseline))
    return mean_with_ci([treated[s] - baseline[s] for s in seeds], confidence)


__all__ = ["FIGURES", "RANGES", "map_metrics", "over_seeds", "paired_gain"]
