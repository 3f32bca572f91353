"""DeepEST-style adaptive web sampling for mispredictions, in O(N) memory.

Sources: A. Guerriero, R. Pietrantuono, S. Russo, "Operation is the hardest teacher:
estimating DNN accuracy looking for mispredictions", ICSE 2021 (DeepEST); S. K. Thompson,
"Adaptive web sampling", *Biometrics* 62 (2006); D. Raj, "Some estimators in sampling with
varying probabilities without replacement", *JASA* 51 (1956).

Draws are sequential and without replacement. Draw ``k`` picks an unlabelled input from

    q^(k) = (1 − r) · pps^(k) + r · web^(k)        (r = ``web_probability``)

where ``pps^(k)`` is the PPS distribution of :mod:`.pps` (oracle misprediction score mixed
with a uniform floor) restricted to unlabelled inputs, and ``web^(k)`` spreads over the *web*:
each misprediction found links to its ``neighbours`` nearest pool inputs in the
representation space, and the web distribution is proportional to the link counts of the
unlabelled inputs (when the web is empty, ``q^(k) = pps^(k)``). Failures cluster, so the web
finds more of them than PPS alone.

Because every ``q^(k)`` is known when the draw is made, Des Raj's ordered estimator is
unbiased for the failure total ``Z`` under any adaptive rule::

    t_k = Σ_{j<k} z_j + z_k / q^(k)_k,    Ẑ = (1/n) Σ_k t_k,
    v(Ẑ) = Σ_k (t_k − Ẑ)² / (n (n − 1))

and ``θ̂ = 1 − Ẑ / N`` with Wilson's interval on the Kish effective size. DeepEST's Java
implementation keeps an N × N similarity matrix; here the web is one vector of link counts,
and a found failure's neighbours are computed on demand from the representation (O(N d)
time, O(N) extra memory).
The design's unconditional inclusion probabilities have no closed form (``inclusion`` is
``None``); ``draw_probabilities`` are the conditional ``q^(k)`` of each draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from faultlab.workers.sampling.params import GuidedParams
from faultlab.workers.sampling.samplers._common import cumulative_choice
from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    SampleResult,
)
from faultlab.workers.sampling.samplers.pps import selection_probabilities


def nearest(embedding: np.ndarray, squared_norms: np.ndarray, index: int, count: int,
            exclude: np.ndarray) -> np.ndarray:
    """The ``count`` inputs nearest to ``index`` in Euclidean distance, skipping ``exclude``
    (``‖a − b‖² = ‖a‖² − 2 a·b + ‖b‖²``: one matrix-vector product, no N × d temporary)."""
    distance = squared_norms - 2.0 * (embedding @ embedding[index])
    distance[exclude] = np.inf
    count = min(count, int(np.isfinite(distance).sum()))
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    return np.argpartition(distance, count - 1)[:count]


class DeepestParams(GuidedParams):
    """DeepEST's parameters."""

    floor: float = Field(default=0.5, gt=0.0, le=1.0)
    """Weight of the uniform component mixed into the PPS probabilities, so every input has
    probability at least ``floor / N`` per draw."""
    web_probability: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Probability that a draw follows the web (neighbours of found failures)."""
    neighbours: int = Field(default=5, ge=1, le=1000)
    """Web links added from each found failure to its nearest pool inputs."""


@dataclass
class WebDraws:
    """The draws of one adaptive web sample, in order."""

    order: np.ndarray
    """Pool ids drawn (distinct)."""
    probabilities: np.ndarray
    """``q^(k)_k``: the probability of each draw given the ones before it."""
    terms: np.ndarray
    """Des Raj's ``t_k = Σ_{j<k} z_j + z_k / q^(k)_k``."""
    found: int
    """Mispredictions found."""


def web_draws(pool: OperationalPool, oracle: LabelOracle, budget: int, spec: DeepestParams,
              rng: np.random.Generator) -> WebDraws:
    """``budget`` sequential draws without replacement from ``q^(k)``, labelling each."""
    size = pool.size
    pps_mass = selection_probabilities(pool.failure_size(spec.oracle), spec.floor)
    pps_total = float(pps_mass.sum())
    web = np.zeros(size)  # link counts of unlabelled inputs (labelled ones are kept at 0)
    taken = np.zeros(size, dtype=bool)
    draws = WebDraws(np.empty(budget, dtype=np.int64), np.empty(budget), np.empty(budget), 0)
    embedding = pool.embedding.astype(np.float32, copy=False)
    squared_norms = (embedding.astype(np.float64) ** 2).sum(axis=1)
    r = spec.web_probability
    for k in range(budget):
        web_total = float(web.sum())
        use_web = web_total > 0 and r > 0
        # Sampling the mixture component first, then a unit within it, draws from q^(k).
        component = web if use_web and rng.random() < r else pps_mass
        index = cumulative_choice(component, rng)
        q = pps_mass[index] / pps_total
        if use_web:
            q = (1.0 - r) * q + r * web[index] / web_total
        failure = 1.0 - float(oracle.correct([index])[0])
        draws.terms[k] = draws.found + failure / q
        draws.order[k] = index
        draws.probabilities[k] = q
        taken[index] = True
        pps_total -= float(pps_mass[index])
        pps_mass[index] = 0.0
        web[index] = 0.0
        if failure:
            draws.found += 1
            web[nearest(embedding, squared_norms, index, spec.neighbours, taken)] += 1.0
        if pps_total <= 0:  # every input labelled (budget = pool size)
            pps_total = 1.0
    return draws


@SAMPLERS.register(
    "deepest",
    params=DeepestParams,
    citation=(
        "Guerriero et al., ICSE 2021; Thompson, Biometrics 2006: "
        "q^(k) = (1 − r) pps^(k) + r web^(k), Raj (1956) estimator"
    ),
)
def deepest_sampling(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: DeepestParams,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """Adaptive web sampling of mispredictions with Des Raj's unbiased ordered estimator;
    the t quantile's degrees of freedom are the failures found − 1 (Satterthwaite: the
    variance rests on the few draws that found one), or labels − 1 when none was found."""
    draws = web_draws(pool, oracle, budget, spec, rng)
    total = float(draws.terms.mean())
    var_total = float(np.var(draws.terms, ddof=1)) / budget if budget > 1 else math.inf
    return SampleResult.from_std_error(
        1.0 - total / pool.size,
        math.sqrt(var_total) / pool.size,
        confidence,
        degrees_of_freedom=draws.found - 1 if draws.found else None,
        sampled=draws.order,
        draw_probabilities=draws.probabilities,
        inclusion=None,
        labels_spent=oracle.labels_given,
        mispredictions_found=draws.found,
        ci_method="wilson-kish-des-raj-satterthwaite",
    )
