"""Difference (model-assisted) estimator: pseudo-oracle predictions over the whole pool,
corrected by the true labels of a simple random sample.

Sources: C.-E. Särndal, B. Swensson, J. Wretman, *Model Assisted Survey Sampling*, Springer
1992, §6.3 (difference and GREG estimators); W. G. Cochran, *Sampling Techniques*, 1977,
§7.2; T. Zrnic, E. J. Candès, "Cross-prediction-powered inference", *PNAS* 121 (2024)
(cross-fitting). DAIC (seed paper 1) combines online pseudo-oracles with offline sampling; this
is its design-based form.

With ``m_i`` a prediction of the correctness of input ``i`` known for every pool input, and a
simple random sample ``s`` of ``n`` inputs without replacement::

    θ̂ = (1/N) Σ_{i∈U} m_i + (1/n) Σ_{i∈s} (y_i − m_i),    v(θ̂) = (1 − n/N) s_e² / n

where ``s_e²`` is the sample variance of the residuals ``e_i = y_i − m_i``. The estimator is
design-unbiased for any fixed ``m``; its variance is that of the residuals instead of that of
``y``, so a good pseudo-oracle shrinks it.

* ``fit: none`` — ``m_i`` is the oracle's own probability of correctness (``p_correct``;
  for an oracle without one, its suspicion rescaled to [0, 1] and reversed).
* ``fit: logistic`` — ``m_i = expit(a + b · x_i)`` with ``x_i`` the logit of the oracle's
  probability (else its negated, standardised suspicion), ``(a, b)`` fitted on the labelled
  sample by K-fold *cross-fitting*: each fold's residuals use a model fitted on the other
  folds, and that model's pool mean, so each fold's term stays unbiased; this recalibrates an
  oracle that is over-confident under operational shift.

The interval is Wilson's on the Kish effective size ``θ̂(1 − θ̂)/v`` with a Student-t quantile.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field
from scipy import special

from faultlab.workers.sampling.params import GuidedParams
from faultlab.workers.sampling.samplers._common import logistic_fit, logit
from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    SampleResult,
)


def oracle_feature(pool: OperationalPool, name: str) -> np.ndarray:
    """The working model's covariate: logit of the oracle's probability, else its negated
    suspicion standardised to mean 0 and unit variance over the pool."""
    scores = pool.oracle(name)
    if scores.p_correct is not None:
        return logit(scores.p_correct)
    s = scores.suspicion
    sd = float(s.std())
    return -(s - s.mean()) / (sd if sd > 0 else 1.0)


class DifferenceParams(GuidedParams):
    """The difference estimator's parameters."""

    fit: Literal["logistic", "none"] = "logistic"
    """Working model of correctness: a cross-fitted logistic regression on the oracle
    score, or the oracle's own probability of correctness as is."""
    folds: int = Field(default=5, ge=2, le=20)
    """Cross-fitting folds of the working model."""


@SAMPLERS.register(
    "difference",
    params=DifferenceParams,
    citation="Särndal, Swensson & Wretman 1992 §6.3: θ̂ = (1/N) Σ_U m_i + (1/n) Σ_s (y_i − m_i)",
)
def difference_estimator(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: DifferenceParams,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """SRS sample; pool-wide pseudo-oracle predictions plus the sample's mean residual."""
    size = pool.size
    ids = rng.choice(size, size=budget, replace=False)
    correct = oracle.correct(ids)
    if spec.fit == "none":
        prediction = pool.predicted_correctness(spec.oracle)
        residual = correct - prediction[ids]
        estimate = float(prediction.mean() + residual.mean())
    else:
        x = oracle_feature(pool, spec.oracle)
        folds = min(spec.folds, budget)
        fold_of = rng.permutation(budget) % folds
        residual = np.empty(budget)
        estimate = 0.0
        for k in range(folds):
            held = fold_of == k
            a, b = logistic_fit(x[ids[~held]], correct[~held]) if (~held).any() else (0.0, 0.0)
            model = special.expit(a + b * x)
            residual[held] = correct[held] - model[ids[held]]
            estimate += held.sum() / budget * float(model.mean() + residual[held].mean())
    variance = (
        (1.0 - budget / size) * float(np.var(residual, ddof=1)) / budget
        if budget > 1
        else math.inf
    )
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
        ci_method="wilson-kish-difference",
    )
