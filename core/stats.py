"""Interval estimates shared by every engine (built on scipy.stats), one function per idea.

* Wilson score interval (E. B. Wilson, "Probable inference, the law of succession, and
  statistical inference", *JASA* 22, 1927): for a proportion ``p`` on ``n`` trials,
  ``(p + z²/2n ± z √(p(1 − p)/n + z²/4n²)) / (1 + z²/n)``.
* Effective sample size (L. Kish, *Survey Sampling*, Wiley 1965, §8.2): the size of a simple
  random sample with replacement with the design's variance; without replacement from ``N``
  it is ``n (N − 1) / (N − n)`` (the finite-population correction folded into ``n``).
"""

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


def wilson_bounds(p: float, n_eff: float, z: float) -> tuple[float, float]:
    """Wilson (1927) score interval at proportion ``p`` and a (possibly fractional, possibly
    infinite: a census gives ``[p, p]``) effective sample size ``n_eff`` (Kish 1965), clipped
    to [0, 1]; ``(0, 1)`` when nothing is known."""
    if n_eff <= 0 or math.isnan(p):
        return 0.0, 1.0
    denom = 1.0 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p), 0.0) / n_eff + z * z / (4 * n_eff * n_eff))
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_half_width(successes: float, trials: float, z: float) -> float:
    """Half-width of the Wilson (1927) score interval (fractional counts allowed)."""
    if trials <= 0:
        return 0.5
    p = successes / trials
    denom = 1.0 + z * z / trials
    return z / denom * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials))


def effective_n_without_replacement(n: int, population: int) -> float:
    """Kish (1965) effective size of a simple random sample of ``n`` of ``population``
    without replacement: ``n (N − 1) / (N − n)``; a census is infinite."""
    if n >= population:
        return math.inf
    return n * (population - 1) / (population - n)


def rate_with_ci(successes: int, trials: int, confidence: float = 0.95) -> dict[str, float]:
    """``{"rate", "ci_low", "ci_high", "n"}`` for a proportion, as every report row carries it."""
    low, high = wilson_interval(successes, trials, confidence)
    rate = successes / trials if trials else math.nan
    return {"rate": rate, "ci_low": low, "ci_high": high, "n": float(trials)}


def two_sided_z(confidence: float) -> float:
    """Two-sided normal quantile, e.g. 1.96 at 95 % (Leveugle et al. use the two-sided one)."""
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def mean_with_ci(values: list[float], confidence: float = 0.95) -> dict[str, float]:
    """Student-t interval of a mean (over seeds or repetitions).

    One value gives no interval (NaN bounds): its spread is unknown. For proportions use
    :func:`rate_with_ci` on the pooled counts instead, which stays inside [0, 1].
    """
    n = len(values)
    if n == 0:
        return {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0.0}
    mean = float(sum(values) / n)
    if n == 1:
        return {"mean": mean, "ci_low": math.nan, "ci_high": math.nan, "n": 1.0}
    sem = float(stats.sem(values))
    if sem == 0.0:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "n": float(n)}
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return {"mean": mean, "ci_low": float(low), "ci_high": float(high), "n": float(n)}
