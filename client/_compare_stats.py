"""The intervals of :mod:`faultlab.client.compare` (formulas and citations there)."""

from __future__ import annotations

import math

import numpy as np


def fpc(population: float, n: int) -> float:
    """Finite-population correction of a standard error (sampling without replacement)."""
    if math.isinf(population) or population <= 1:
        return 1.0
    return math.sqrt(max(population - n, 0.0) / (population - 1.0))


def agresti_min(n: int, fixed: int, broken: int, z: float,
                population: float = math.inf) -> tuple[float, float, float]:
    """Paired difference ``(broken − fixed) / n`` and its Agresti–Min interval (the pairs are
    a sample of a fault space of ``population``: finite-population corrected, within [−1, 1]
    and always containing the estimate)."""
    if n == 0:
        return math.nan, -1.0, 1.0
    d = (broken - fixed) / n
    b, c = (fixed + 0.5) / (n + 2.0), (broken + 0.5) / (n + 2.0)
    half = z * math.sqrt((b + c - (c - b) ** 2) / (n + 2.0)) * fpc(population, n)
    return d, min(max(-1.0, c - b - half), d), max(min(1.0, c - b + half), d)


def mcnemar(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value: ``broken ~ Binomial(fixed + broken, ½)``."""
    if fixed + broken == 0:
        return 1.0
    from scipy import stats

    return float(stats.binomtest(int(broken), int(fixed + broken), 0.5).pvalue)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, confidence: float, resamples: int,
                     seed: int) -> tuple[float, float, float]:
    """Mean of ``b − a`` over pairs with its percentile bootstrap interval."""
    diff = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if len(diff) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(diff.mean()), float(low), float(high)


def mover(a: tuple[float, float, float],
          b: tuple[float, float, float]) -> tuple[float, float, float]:
    """``b − a`` with the square-and-add interval from each side's (value, low, high)."""
    (p1, l1, u1), (p2, l2, u2) = a, b
    d = p2 - p1
    return (d, d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2),
            d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2))
