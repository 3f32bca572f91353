"""Interval and model-fitting helpers shared by the samplers (numpy + scipy.stats)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from faultlab.stats import two_sided_z, wilson_bounds


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile (1.96 at 95 %)."""
    return two_sided_z(confidence)


def design_effect_interval(estimate: float, std_error: float, labels: int,
                           confidence: float,
                           degrees_of_freedom: int | None = None) -> tuple[float, float]:
    """Wilson (1927) interval at the Kish (1965) effective size ``θ̂(1 − θ̂) / se²`` of the
    design, with the two-sided Student-t quantile on ``degrees_of_freedom`` (default
    ``labels − 1``) in place of z (small samples). A zero standard error with an estimate
    strictly inside (0, 1) means a census (zero width); at an estimate of 0 or 1 the labels
    themselves are the effective size (no failure seen is not certainty)."""
    theta = min(max(float(estimate), 0.0), 1.0)
    if not math.isfinite(std_error) or labels < 2:
        return 0.0, 1.0
    if 0.0 < theta < 1.0:
        n_eff = theta * (1.0 - theta) / std_error**2 if std_error > 0 else math.inf
    else:
        n_eff = float(labels)
    df = labels - 1 if degrees_of_freedom is None else max(1, degrees_of_freedom)
    quantile = float(stats.t.ppf(0.5 + confidence / 2.0, df))
    return wilson_bounds(theta, n_eff, quantile)


def wilson_interval(p: float, n_eff: float, confidence: float) -> tuple[float, float]:
    """Wilson (1927) score interval at ``confidence`` for a proportion ``p`` observed on
    ``n_eff`` effective draws (Kish 1965); see :func:`faultlab.stats.wilson_bounds`."""
    return wilson_bounds(p, n_eff, z_value(confidence))


def srs_mean_se(values: np.ndarray, population: int) -> float:
    """Standard error of a sample mean under SRS without replacement (Cochran 1977, eq. 2.12)."""
    n = len(values)
    if n < 2:
        return math.inf
    return math.sqrt(max(0.0, 1.0 - n / population) * float(np.var(values, ddof=1)) / n)


def logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2,
                 iterations: int = 50) -> tuple[float, float]:
    """Intercept and slope of a one-feature logistic regression by Newton–Raphson (IRLS) with
    a small ridge penalty, so a sample with no (or only) mispredictions still gives finite
    coefficients."""
    features = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    penalty = np.diag([ridge, ridge])
    for _ in range(iterations):
        mu = special.expit(features @ beta)
        w = np.maximum(mu * (1.0 - mu), 1e-9)
        gradient = features.T @ (y - mu) - penalty @ beta
        hessian = (features * w[:, None]).T @ features + penalty
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if float(np.abs(step).max()) < 1e-8:
            break
    return float(beta[0]), float(beta[1])


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """log(p / (1 − p)), clipped away from 0 and 1."""
    q = np.clip(p, eps, 1.0 - eps)
    return np.asarray(np.log(q) - np.log1p(-q))


def cumulative_choice(weights: np.ndarray, rng: np.random.Generator) -> int:
    """One index drawn with probability proportional to ``weights`` (O(N), no copy of p)."""
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(weights) - 1)
