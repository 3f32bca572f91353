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

and ``θ̂ = 1 − Ẑ / N`` with a normal interval. DeepEST's Java implementation keeps an N × N
similarity matrix; here the web is one vector of link counts, and a found failure's
neighbours are computed on demand from the representation (O(N d) time, O(N) extra memory).
The design's unconditional inclusion probabilities have no closed form (``inclusion`` is
``None``); ``draw_probabilities`` are the conditional ``q^(k)`` of each draw.
"""

from __future__ import annotations

import math

import numpy as np

from faultlab.workers.sampling.params import SamplerSpec
from faultlab.workers.sampling.samplers._common import normal_interval
from faultlab.workers.sampling.samplers.base import (
    LabelOracle,
    OperationalPool,
    SampleResult,
    register_sampler,
)
from faultlab.workers.sampling.samplers.pps import selection_probabilities


def nearest(embedding: np.ndarray, index: int, count: int, exclude: np.ndarray) -> np.ndarray:
    """The ``count`` inputs nearest to ``index`` in Euclidean distance, skipping ``exclude``."""
    distance = ((embedding - embedding[index]) ** 2).sum(axis=1)
    distance[exclude] = np.inf
    count = min(count, int(np.isfinite(distance).sum()))
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    return np.argpartition(distance, count - 1)[:count]


@register_sampler("deepest")
def deepest_sampling(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: SamplerSpec,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """Adaptive web sampling of mispredictions with Des Raj's unbiased ordered estimator."""
    size = pool.size
    base = selection_probabilities(pool.failure_size(spec.oracle), spec.floor)
    web = np.zeros(size)
    taken = np.zeros(size, dtype=bool)
    order = np.empty(budget, dtype=np.int64)
    draw_probabilities = np.empty(budget)
    terms = np.empty(budget)
    found_total = 0.0
    embedding = pool.embedding.astype(np.float32, copy=False)
    for k in range(budget):
        pps_mass = np.where(taken, 0.0, base)
        pps_total = float(pps_mass.sum())
        web_mass = np.where(taken, 0.0, web)
        web_total = float(web_mass.sum())
        if web_total > 0 and spec.web_probability > 0:
            q = (1.0 - spec.web_probability) * pps_mass / pps_total + (
                spec.web_probability * web_mass / web_total)
        else:
            q = pps_mass / pps_total
        cumulative = np.cumsum(q)
        index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        if index >= size or q[index] <= 0:  # rounding at the very end of the cumulative sum
            index = int(np.flatnonzero(q > 0)[-1])
        failure = 1.0 - float(oracle.correct([index])[0])
        terms[k] = found_total + failure / q[index]
        order[k] = index
        draw_probabilities[k] = q[index]
        taken[index] = True
        web[index] = 0.0
        if failure:
            found_total += 1.0
            web[nearest(embedding, index, spec.neighbours, taken)] += 1.0
    total = float(terms.mean())
    var_total = float(np.var(terms, ddof=1)) / budget if budget > 1 else math.inf
    estimate = 1.0 - total / size
    std_error = math.sqrt(var_total) / size
    low, high = normal_interval(estimate, std_error, confidence)
    return SampleResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        std_error=std_error,
        sampled=order,
        draw_probabilities=draw_probabilities,
        inclusion=None,
        labels_spent=oracle.labels_given,
        mispredictions_found=int(found_total),
        ci_method="normal-des-raj",
    )
