"""Probability-proportional-to-size sampling on a pseudo-oracle's misprediction score, with
the Hansen–Hurwitz or the Horvitz–Thompson estimator.

Sources: M. H. Hansen, W. N. Hurwitz, "On the theory of sampling from finite populations",
*Ann. Math. Stat.* 14 (1943); D. G. Horvitz, D. J. Thompson, "A generalization of sampling
without replacement from a finite universe", *JASA* 47 (1952); B. Rosén, "On sampling with
probability proportional to size", *J. Stat. Planning and Inference* 62 (1997) (Pareto πps
order sampling); J. Hájek, *Ann. Math. Stat.* 35 (1964) (variance of πps designs). For DNNs:
Guerriero et al., DeepSample (ICSE 2024, 2-UPS / RHC-S).

The design samples the *failures*: with ``z_i = 1 − y_i`` the misprediction indicator and
``q_i`` the oracle's probability of a misprediction (``1 − p_correct``, else its shifted
suspicion), each draw selects input ``i`` with probability

    p_i = (1 − α) q_i / Σ q + α / N            (α = ``floor``: no input has probability 0)

so ``z_i / p_i`` is nearly constant when the oracle is good, and the failure total
``Z = Σ z_i`` is estimated with low variance; accuracy is ``θ̂ = 1 − Ẑ / N``.

* ``hh`` — ``n`` independent draws with replacement; ``Ẑ = (1/n) Σ_k z_k / p_k``,
  ``v(Ẑ) = Σ_k (z_k/p_k − Ẑ)² / (n (n − 1))`` (exactly unbiased). A unit drawn twice is
  labelled once, so the labels spent may be below the budget.
* ``ht`` — ``n`` distinct inputs by Pareto πps order sampling with target inclusion
  probabilities ``λ_i = min(1, c · p_i)`` (``Σ λ_i = n``; units with ``λ_i = 1`` are taken
  with certainty); ``Ẑ = Σ_s z_i / λ_i`` with Rosén's variance estimator
  ``v = n/(n−1) Σ_s (1 − λ_i)(z_i/λ_i − Â)²``, ``Â = Σ_s (1−λ_i) z_i/λ_i / Σ_s (1−λ_i)``.
  Pareto sampling's inclusion probabilities equal the targets up to ``O(1/n)`` (Rosén 1997);
  the reported ones are the targets.

Intervals are Wilson's on the Kish effective size ``θ̂(1 − θ̂)/v`` with a Student-t quantile
(:meth:`SampleResult.from_std_error`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from faultlab.workers.sampling.params import GuidedParams
from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    SampleResult,
)


def selection_probabilities(size_measure: np.ndarray, floor: float) -> np.ndarray:
    """Per-draw probabilities ``(1 − α) q / Σq + α / N`` (uniform when every q is 0)."""
    count = len(size_measure)
    total = float(size_measure.sum())
    if total <= 0:
        return np.full(count, 1.0 / count)
    return (1.0 - floor) * size_measure / total + floor / count


def inclusion_targets(p: np.ndarray, n: int) -> np.ndarray:
    """``λ_i = min(1, c p_i)`` with ``Σ λ_i = n``: units that would exceed 1 are certainties
    and the rest is rescaled (iterated until no new certainty appears)."""
    lam = np.zeros_like(p)
    certain = np.zeros(len(p), dtype=bool)
    for _ in range(len(p)):
        rest = ~certain
        lam[certain] = 1.0
        lam[rest] = (n - certain.sum()) * p[rest] / p[rest].sum()
        over = rest & (lam >= 1.0)
        if not over.any():
            break
        certain |= over
    return np.minimum(lam, 1.0)


def pareto_sample(lam: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pareto πps order sample (Rosén 1997): the ``n`` smallest ranking variables
    ``Q_i = [U_i/(1−U_i)] / [λ_i/(1−λ_i)]``; certainties (``λ_i = 1``) rank first."""
    u = rng.random(len(lam))
    with np.errstate(divide="ignore", invalid="ignore"):
        rank = np.where(lam >= 1.0, -1.0, (u / (1.0 - u)) / (lam / (1.0 - lam)))
    return np.argsort(rank, kind="stable")[:n]


def hansen_hurwitz(values: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Hansen–Hurwitz estimate of a population total from ``n`` with-replacement draws with
    per-draw probabilities ``p``, and its unbiased variance estimate."""
    expanded = values / p
    n = len(values)
    variance = float(np.var(expanded, ddof=1)) / n if n > 1 else math.inf
    return float(expanded.mean()), variance


def horvitz_thompson(values: np.ndarray, inclusion: np.ndarray) -> tuple[float, float]:
    """Horvitz–Thompson estimate of a population total from a fixed-size sample with
    first-order inclusion probabilities ``inclusion``, with Rosén's (1997) / Hájek's variance
    estimator for πps designs ``n/(n−1) Σ (1−π)(y/π − Â)²``."""
    expanded = values / inclusion
    n = len(values)
    c = 1.0 - inclusion
    if c.sum() <= 0:  # a census: nothing is uncertain
        return float(expanded.sum()), 0.0
    if n < 2:
        return float(expanded.sum()), math.inf
    centre = float((c * expanded).sum() / c.sum())
    return float(expanded.sum()), n / (n - 1) * float((c * (expanded - centre) ** 2).sum())


class PpsParams(GuidedParams):
    """PPS sampling's parameters."""

    estimator: Literal["hh", "ht"] = "ht"
    """Hansen–Hurwitz (draws with replacement) or Horvitz–Thompson (Pareto πps, without)."""
    floor: float = Field(default=0.5, gt=0.0, le=1.0)
    """Weight of the uniform component mixed into the selection probabilities, so every
    input has probability at least ``floor / N`` per draw."""

    def display(self, name: str) -> str:
        return f"{name}-{self.estimator}({self.oracle})"


@SAMPLERS.register(
    "pps",
    params=PpsParams,
    citation=(
        "Hansen & Hurwitz, Ann. Math. Stat. 1943; Horvitz & Thompson, JASA 1952: "
        "θ̂ = 1 − (1/N) Σ_s z_i / π_i"
    ),
)
def pps_sampling(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: PpsParams,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """PPS on the oracle's misprediction probability; Hansen–Hurwitz or Horvitz–Thompson."""
    size = pool.size
    p = selection_probabilities(pool.failure_size(spec.oracle), spec.floor)
    if spec.estimator == "hh":
        draws = rng.choice(size, size=budget, replace=True, p=p)
        failures = 1.0 - oracle.correct(draws)
        total, var_total = hansen_hurwitz(failures, p[draws])
        inclusion = 1.0 - (1.0 - p) ** budget  # P(drawn at least once in n draws)
        first = np.sort(np.unique(draws, return_index=True)[1])
        sampled = draws[first]
        draw_probabilities = p[sampled]
        found = int(failures[first].sum())
        method = "wilson-kish-hansen-hurwitz"
    else:
        inclusion = inclusion_targets(p, budget)
        sampled = pareto_sample(inclusion, budget, rng)
        failures = 1.0 - oracle.correct(sampled)
        draw_probabilities = inclusion[sampled]
        total, var_total = horvitz_thompson(failures, draw_probabilities)
        found = int(failures.sum())
        method = "wilson-kish-horvitz-thompson"
    estimate = 1.0 - total / size
    std_error = math.sqrt(var_total) / size
    return SampleResult.from_std_error(
        estimate,
        std_error,
        confidence,
        sampled=sampled,
        draw_probabilities=draw_probabilities,
        inclusion=inclusion,
        labels_spent=oracle.labels_given,
        mispredictions_found=found,
        ci_method=method,
    )
