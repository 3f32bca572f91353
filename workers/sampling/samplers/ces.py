"""CES — cross-entropy-based representative sampling (the literature's baseline).

Source: Z. Li, X. Ma, C. Xu, C. Cao, J. Xu, J. Lü, "Boosting operational DNN testing
efficiency through conditioning", ESEC/FSE 2019.

CES picks a sample whose distribution of representation activations (the last hidden layer)
matches the whole pool's. Each neuron's output range over the pool is cut into ``bins``
equal sections; ``P_j`` is the pool's histogram of neuron ``j`` and ``Q_j`` the sample's. The
sample starts with ``initial`` random inputs; each step draws ``groups`` random candidate
groups of ``group_size`` unlabelled inputs and adds the group minimising the mean
cross-entropy ``−(1/d) Σ_j Σ_k P_jk log Q_jk`` (``Q`` smoothed by 10⁻³ counts), until the
budget is spent. The estimate is the sample accuracy ``ȳ``.

CES has no variance estimator (Li et al. give none): the design is greedy, so its inclusion
probabilities are unknown (``inclusion`` is ``None``). The interval reported is Wilson's as
if the sample were simple random (``ci_method = wilson-srs-assumed``) — not design-valid;
replay campaigns measure how far its coverage is from nominal.

Implementation note: the cross-entropy of every candidate is computed from the change it
makes (only the ``group_size × d`` touched bins), so a step costs O(groups · group_size · d)
instead of O(groups · d · bins).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from faultlab.stats import effective_n_without_replacement
from faultlab.workers.sampling.params import SamplerParams
from faultlab.workers.sampling.samplers._common import srs_mean_se, wilson_interval
from faultlab.workers.sampling.samplers.base import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    SampleResult,
)

#: Pseudo-count added to every histogram bin of the sample (keeps log Q finite).
SMOOTHING = 1e-3


def neuron_bins(embedding: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width section index (0..bins-1) of every input for every neuron."""
    low = embedding.min(axis=0)
    span = embedding.max(axis=0) - low
    scaled = np.where(span > 0, (embedding - low) / np.where(span > 0, span, 1.0), 0.0)
    return np.minimum((scaled * bins).astype(np.int64), bins - 1)


class CesParams(SamplerParams):
    """CES's parameters."""

    groups: int = Field(default=300, ge=1, le=100_000)
    """Random candidate groups examined per step."""
    group_size: int = Field(default=5, ge=1, le=1000)
    """Inputs added per step."""
    initial: int = Field(default=30, ge=1, le=100_000)
    """Inputs drawn at random before the conditioning steps."""
    bins: int = Field(default=20, ge=2, le=1000)
    """Histogram bins per neuron of the representation."""


@SAMPLERS.register(
    "ces",
    params=CesParams,
    citation=(
        "Li et al., ESEC/FSE 2019: "
        "greedy groups minimising −(1/d) Σ_j Σ_k P_jk log Q_jk; θ̂ = ȳ"
    ),
)
def ces_sampling(
    pool: OperationalPool,
    oracle: LabelOracle,
    budget: int,
    spec: CesParams,
    rng: np.random.Generator,
    confidence: float,
) -> SampleResult:
    """Greedy representative sample (Li et al. 2019); SRS-assumed Wilson interval."""
    size = pool.size
    active = pool.embedding.max(axis=0) > pool.embedding.min(axis=0)
    # A constant (dead) neuron puts every input in one bin: it cannot tell samples apart.
    section = neuron_bins(pool.embedding[:, active] if active.any() else pool.embedding, spec.bins)
    neurons = section.shape[1]
    offset = np.arange(neurons) * spec.bins
    flat = section + offset  # flat (neuron, bin) index of every input
    pool_hist = (np.bincount(flat.ravel(), minlength=neurons * spec.bins) / size).astype(np.float32)
    initial = min(spec.initial, budget)
    chosen = list(rng.choice(size, size=initial, replace=False))
    taken = np.zeros(size, dtype=bool)
    taken[chosen] = True
    counts = np.bincount(flat[chosen].ravel(), minlength=neurons * spec.bins).astype(np.float32)
    while len(chosen) < budget:
        remaining = np.flatnonzero(~taken)
        g = min(spec.group_size, budget - len(chosen), len(remaining))
        candidates = remaining[rng.integers(0, len(remaining), size=(spec.groups, g))]
        cells = flat[candidates]  # (groups, g, d)
        c = counts[cells] + SMOOTHING
        for m in range(1, g):  # earlier group members already in the same bin
            c[:, m, :] += (cells[:, :m, :] == cells[:, m : m + 1, :]).sum(axis=1)
        gain = (pool_hist[cells] * (np.log1p(1.0 / c))).sum(axis=(1, 2))
        group = np.unique(candidates[int(np.argmax(gain))])
        taken[group] = True
        chosen.extend(int(i) for i in group)
        np.add.at(counts, flat[group].ravel(), 1.0)
    ids = np.asarray(chosen, dtype=np.int64)
    correct = oracle.correct(ids)
    estimate = float(correct.mean())
    n_eff = effective_n_without_replacement(len(ids), size)
    low, high = wilson_interval(estimate, n_eff, confidence)
    return SampleResult(
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        std_error=srs_mean_se(correct, size),
        sampled=ids,
        draw_probabilities=np.full(len(ids), np.nan),
        inclusion=None,
        labels_spent=oracle.labels_given,
        mispredictions_found=int((correct == 0).sum()),
        ci_method="wilson-srs-assumed",
    )
