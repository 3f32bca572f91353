"""Stratified random sampling on a pseudo-oracle's score, with proportional or Neyman
allocation.

Sources: J. Neyman, "On the two different aspects of the representative method", *JRSS* 97
(1934); W. G. Cochran, *Sampling Techniques*, 3rd ed., 1977, ch. 5; for operational DNN
testing, A. Guerriero, R. Pietrantuono, S. Russo, "DeepSample: DNN sampling-based testing for
operational accuracy assessment", ICSE 2024 (SSRS).

The pool is cut into ``H`` equal-size strata by the rank of the oracle's suspicion, so inputs
the oracle trusts and inputs it doubts fall into different strata. Labels per stratum:

* proportional — ``n_h ∝ N_h``;
* Neyman — ``n_h ∝ N_h S_h`` with the stratum's standard deviation *predicted before any
  label is bought*: ``S_h = sqrt(p̄_h (1 − p̄_h))`` where ``p̄_h`` is the stratum's mean prior
  probability of correctness (the oracle's own probability, else the model's max softmax),
  floored at ``S_h ≥ 0.1`` so no stratum is assumed to have under ~1 % mispredictions.

Every stratum gets at least 2 labels (for its variance) and at most ``N_h``. Within strata
inputs are drawn by simple random sampling, so ``π_i = n_h / N_h``. Estimator and variance
(Cochran eq. 5.1, 5.6)::

    θ̂ = Σ_h W_h ȳ_h,    v(θ̂) = Σ_h W_h² (1 − n_h/N_h) s_h² / n_h,    W_h = N_h / N

The interval is Wilson's on the design's effective sample size ``θ̂ (1 − θ̂) / v(θ̂)`` (Kish's
design effect; the approach of Korn & Graubard, *Survey Methodology* 24, 1998, for survey
proportions); a stratum that sampled no failure (or only failures) contributes the variance
of its Jeffreys-adjusted proportion ``(x + ½)/(n_h + 1)`` to ``v(θ̂)``, not 0.
With the allocation fixed before labelling, the estimator is exactly unbiased.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from faultlab.errors import SpecError
from faultlab.workers.sampling.params import GuidedParams
from faultlab.workers.sampling.samplers._common import wilson_interval
from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    SampleResult,
)

#: Smallest standard deviation Neyman allocation assumes for a stratum (≈ 1 % mispredictions).
MIN_STRATUM_SD = 0.1
#: Labels every stratum gets at least (two are needed for a within-stratum variance).
MIN_PER_STRATUM = 2


def allocate(budget: int, sizes: np.ndarray, weights: np.ndarray,
             minimum: int = MIN_PER_STRATUM) -> np.ndarray:
    """Integer allocation of ``budget`` labels proportional to ``weights``, at least
    ``minimum`` and at most ``sizes`` per stratum (largest-remainder rounding)."""
    allocation = np.minimum(minimum, sizes).astype(np.int64)
    for _ in range(len(sizes) + 1):
        remaining = budget - int(allocation.sum())
        capacity = sizes - allocation
        open_strata = capacity > 0
        if remaining <= 0 or not open_strata.any():
            break
        w = np.where(open_strata, weights, 0.0)
        if w.sum() <= 0:
            w = open_strata.astype(np.float64)
        share = remaining * w / w.sum()
        add = np.minimum(np.floor(share).astype(np.int64), capacity)
        left = remaining - int(add.sum())
        if left > 0:
            fraction = np.where(open_strata & (add < capacity), share - np.floor(share), -1.0)
            for index in np.argsort(-fraction, kind="stable")[:left]:
                if fraction[index] >= 0:
                    add[index] += 1
        allocation += add
    return allocation


def stratum_variance(correct: np.ndarray) -> float:
    """Within-stratum variance ``s_h²``; a stratum whose sample shows no variation (no
    misprediction, or nothing right) gets that of the Jeffreys-adjusted proportion
    ``p̃ = (x + ½)/(n + 1)``, ``p̃(1 − p̃) n/(n − 1)``: seeing 0 failures in ``n_h`` draws does not
    make the stratum certain, and a zero ``s_h²`` made the Kish-size Wilson interval
    under-cover (0.925) exactly when strata sample no failures."""
    n = len(correct)
    variance = float(np.var(correct, ddof=1))
    if variance > 0:
        return variance
    adjusted = (float(correct.sum()) + 0.5) / (n + 1.0)
    return adjusted * (1.0 - adjusted) * n / (n - 1.0)


class StratifiedParams(GuidedParams):
    """Stratified sampling's parameters."""

    strata: int = Field(default=10, ge=2, le=200)
    """Number of strata (equal-size quantile bins of the oracle's score)."""
    allocation: Literal["proportional", "neyman"] = "neyman"
    """Labels per stratum proportional to its size, or Neyman (size × predicted SD)."""

    def display(self, name: str) -> str:
        return f"{name}-{self.allocation}({self.oracle})"

    def check_budget(self, smallest: int, where: str, field: str) -> None:
        if 2 * self.strata > smallest:
            raise SpecError(
                f"{where}.strata",
                f"{self.strata} strata need at least {2 * self.strata} labels (2 per stratum "
                f"for its variance), more than the smallest budget ({field} = {smallest})",
                f"2..{max(2, smallest // 2)}",
            )


@SAMPLERS.register(
    "stratified",
    params=StratifiedParams,
    citation="Neyman, JRSS 1934; Cochran 1977 ch. 5: θ̂ = Σ_h (N_h/N) ȳ_h, Neyman n_h ∝ N_h S_h",
)
def stratified_sampling(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: StratifiedParams,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """Quantile strata of the oracle's suspicion; proportional or Neyman allocation."""
    size = pool.size
    order = np.argsort(pool.oracle(spec.oracle).suspicion, kind="stable")
    strata = [s for s in np.array_split(order, min(spec.strata, size)) if len(s)]
    sizes = np.array([len(s) for s in strata], dtype=np.int64)
    if spec.allocation == "neyman":
        prior = pool.prior_p_correct(spec.oracle)
        mean_prior = np.array([float(prior[s].mean()) for s in strata])
        sd = np.maximum(np.sqrt(mean_prior * (1.0 - mean_prior)), MIN_STRATUM_SD)
        weights = sizes * sd
    else:
        weights = sizes.astype(np.float64)
    allocation = allocate(budget, sizes, weights)
    inclusion = np.empty(size)
    sampled: list[np.ndarray] = []
    estimate = variance = 0.0
    found = 0
    for members, n_h in zip(strata, allocation, strict=True):
        inclusion[members] = n_h / len(members)
        ids = rng.choice(members, size=int(n_h), replace=False)
        correct = oracle.correct(ids)
        sampled.append(ids)
        found += int((correct == 0).sum())
        weight = len(members) / size
        estimate += weight * float(correct.mean())
        if n_h > 1:
            variance += (weight**2 * (1.0 - n_h / len(members))
                         * stratum_variance(correct) / n_h)
    ids_all = np.concatenate(sampled)
    if variance > 0:
        n_eff = estimate * (1.0 - estimate) / variance
    else:  # no stratum varies: the design is as informative as a census of what it saw
        n_eff = math.inf if int(allocation.sum()) >= size else float(allocation.sum())
    low, high = wilson_interval(estimate, n_eff, confidence)
    return SampleResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        std_error=math.sqrt(variance),
        sampled=ids_all,
        draw_probabilities=inclusion[ids_all],
        inclusion=inclusion,
        labels_spent=oracle.labels_given,
        mispredictions_found=found,
        ci_method="wilson-design-effect",
        details={"strata": float(len(strata))},
    )
