"""Prediction-powered inference (PPI) and PPI++ for operational accuracy.

Sources: A. N. Angelopoulos, S. Bates, C. Fannjiang, M. I. Jordan, T. Zrnic,
"Prediction-powered inference", *Science* 382 (2023); A. N. Angelopoulos, J. C. Duchi,
T. Zrnic, "PPI++: Efficient prediction-powered inference", arXiv:2311.01453 (2023).

A predictor ``f`` of correctness is evaluated on all ``N`` pool inputs (the pseudo-oracle's
probability that the model is right; for an oracle without one, its suspicion rescaled to
[0, 1] and reversed) and true labels are bought for a simple random sample of ``n``::

    θ̂_λ = λ · (1/N) Σ_U f_i + (1/n) Σ_s (y_i − λ f_i)
    σ̂² = λ² Var_U(f) / N + Var_s(y − λ f) / n,     CI: θ̂_λ ± z σ̂

Classic PPI takes ``λ = 1`` (the "rectifier" corrects the pseudo-labels' bias). PPI++ power
tuning picks ``λ̂ = Cov_s(y, f) / ((1 + n/N) Var_U(f))``, clipped to [0, 1], which minimises
the variance and never does worse than the labels alone (``λ = 0`` is the sample mean).

PPI treats labelled and unlabelled data as independent draws from the operational
distribution; the pool's mean accuracy is its target here and the labelled inputs are drawn
from the pool, so the ``Var_U(f)/N`` term makes the interval slightly conservative. The
design-based counterpart with finite-population correction is :mod:`.difference`.
"""

from __future__ import annotations

import math

import numpy as np

from faultlab.workers.sampling.params import GuidedParams
from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    SampleResult,
)


class PpiParams(GuidedParams):
    """PPI's parameters."""

    power_tuning: bool = True
    """PPI++ power tuning of the pseudo-label weight λ (False: classic PPI, λ = 1)."""

    def display(self, name: str) -> str:
        return f"{'ppi++' if self.power_tuning else 'ppi'}({self.oracle})"


@SAMPLERS.register(
    "ppi",
    params=PpiParams,
    citation=(
        "Angelopoulos et al., Science 2023 (PPI); arXiv:2311.01453 (PPI++): "
        "θ̂_λ = λ (1/N) Σ_U f_i + (1/n) Σ_s (y_i − λ f_i)"
    ),
)
def prediction_powered(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: PpiParams,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """PPI (λ = 1) or PPI++ (power-tuned λ) mean estimate of accuracy with its interval."""
    size = pool.size
    f = pool.predicted_correctness(spec.oracle)
    ids = rng.choice(size, size=budget, replace=False)
    correct = oracle.correct(ids)
    f_s = f[ids]
    var_f = float(np.var(f, ddof=1)) if size > 1 else 0.0
    if spec.power_tuning:
        if budget > 1 and var_f > 0:
            cov = float(np.cov(correct, f_s, ddof=1)[0, 1])
            lam = min(1.0, max(0.0, cov / ((1.0 + budget / size) * var_f)))
        else:
            lam = 0.0
    else:
        lam = 1.0
    rectifier = correct - lam * f_s
    estimate = float(lam * f.mean() + rectifier.mean())
    if budget > 1:
        variance = lam**2 * var_f / size + float(np.var(rectifier, ddof=1)) / budget
    else:
        variance = math.inf
    std_error = math.sqrt(variance)
    inclusion = np.full(size, budget / size)
    return SampleResult.from_std_error(
        estimate,
        std_error,
        confidence,
        sampled=ids,
        draw_probabilities=inclusion[ids],
        inclusion=inclusion,
        labels_spent=oracle.labels_given,
        mispredictions_found=int((correct == 0).sum()),
        ci_method="wilson-kish-ppi",
        details={"lambda": lam},
    )
