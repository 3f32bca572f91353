"""Simple random sampling without replacement — the baseline every other sampler is judged
against.

Source: W. G. Cochran, *Sampling Techniques*, 3rd ed., Wiley 1977, ch. 2–3. ``n`` distinct
inputs are drawn uniformly from the pool of ``N``; every input has inclusion probability
``π = n / N``. The estimate of operational accuracy is the sample mean of the correctness
indicators, ``θ̂ = ȳ``, with variance ``(1 − n/N) s² / n``. The interval is Wilson's score
interval on the effective sample size ``n (N − 1) / (N − n)`` (the finite-population
correction), which, unlike the Wald interval, keeps its coverage when the model is accurate
and few mispredictions are sampled.
"""

from __future__ import annotations

import numpy as np

from faultlab.stats import effective_n_without_replacement
from faultlab.workers.sampling.params import SamplerParams
from faultlab.workers.sampling.samplers._common import (
    srs_mean_se,
    wilson_interval,
)
from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    SampleResult,
)


@SAMPLERS.register(
    "srs",
    params=SamplerParams,
    citation=(
        "Cochran, Sampling Techniques (1977) ch. 2-3: "
        "θ̂ = ȳ, Var = (1 − n/N) s²/n, Wilson CI on n(N − 1)/(N − n)"
    ),
)
def simple_random_sampling(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: SamplerParams,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """Uniform draw of ``budget`` distinct inputs; sample mean with a Wilson-fpc interval."""
    size = pool.size
    ids = rng.choice(size, size=budget, replace=False)
    correct = oracle.correct(ids)
    estimate = float(correct.mean())
    low, high = wilson_interval(estimate, effective_n_without_replacement(budget, size), confidence)
    inclusion = np.full(size, budget / size)
    return SampleResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        std_error=srs_mean_se(correct, size),
        sampled=ids,
        draw_probabilities=inclusion[ids],
        inclusion=inclusion,
        labels_spent=oracle.labels_given,
        mispredictions_found=int((correct == 0).sum()),
        ci_method="wilson-fpc",
    )
