"""Interval estimates shared by every engine (all built on scipy.stats)."""

from __future__ import annotations

import math

from scipy import stats


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    Returns (0, 1) when there are no trials: nothing is known.
    """
    if trials <= 0:
        return 0.0, 1.0
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return float(ci.low), float(ci.high)


def rate_with_ci(successes: int, trials: int, confidence: float = 0.95) -> dict[str, float]:
    """``{"rate", "ci_low", "ci_high", "n"}`` for a proportion, as every report row carries it."""
    low, high = wilson_interval(successes, trials, confidence)
    rate = successes / trials if trials else math.nan
    return {"rate": rate, "ci_low": low, "ci_high": high, "n": float(trials)}


def two_sided_z(confidence: float) -> float:
    """Two-sided normal quantile, e.g. 1.96 at 95 % (Leveugle et al. use the two-sided one)."""
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def mean_with_ci(values: list[float], confidence: float = 0.95) -> dict[str, float]:
    """Student-t interval of a mean (over seeds or repetitions)."""
    n = len(values)
    if n == 0:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0.0}
    mean = float(sum(values) / n)
    if n == 1:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "n": 1.0}
    sem = float(stats.sem(values))
    if sem == 0.0:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "n": float(n)}
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return {"mean": mean, "ci_low": float(low), "ci_high": float(high), "n": float(n)}
