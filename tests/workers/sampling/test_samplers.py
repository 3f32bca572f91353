"""Samplers (``workers/sampling/samplers/*``): estimators on synthetic pools with known truth,
exact HH/HT checks on enumerable designs, and each sampler's own ``Params`` and citation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from faultlab.errors import SpecError
from faultlab.workers.sampling.params import SamplerParams, SamplerSpec
from faultlab.workers.sampling.samplers import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
    OracleScores,
)
from faultlab.workers.sampling.samplers.pps import (
    hansen_hurwitz,
    horvitz_thompson,
    inclusion_targets,
    pareto_sample,
    selection_probabilities,
)
from faultlab.workers.sampling.samplers.stratified import allocate
from tests.validity.conftest import coverage_tolerance

# --------------------------------------------------------------------------- synthetic pool


def synthetic_pool(size: int = 2000, seed: int = 0) -> tuple[OperationalPool, np.ndarray, float]:
    """An accurate model whose mispredictions concentrate where its (over-confident) softmax
    is low; the embedding carries the same signal plus noise. Returns pool, labels, truth."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(6.0, 0.6, size)
    correct = rng.random(size) < p_true
    predictions = rng.integers(0, 10, size)
    labels = np.where(correct, predictions, (predictions + 1) % 10)
    msp = np.sqrt(p_true)  # over-confident, as under operational shift
    entropy = 1.0 - p_true + rng.normal(0.0, 0.05, size)
    embedding = np.column_stack([p_true + rng.normal(0, 0.05, size), rng.normal(size=(size, 5))])
    pool = OperationalPool(
        predictions,
        {"msp": OracleScores(1.0 - msp, msp), "entropy": OracleScores(entropy)},
        embedding,
    )
    return pool, labels, float(correct.mean())


POOL, LABELS, TRUTH = synthetic_pool()

ESTIMATORS = [
    SamplerSpec(name="srs"),
    SamplerSpec(name="stratified", allocation="proportional"),
    SamplerSpec(name="stratified"),
    SamplerSpec(name="stratified", oracle="entropy"),
    SamplerSpec(name="pps", estimator="hh"),
    SamplerSpec(name="pps", estimator="ht"),
    SamplerSpec(name="deepest"),
    SamplerSpec(name="difference"),
    SamplerSpec(name="difference", fit="none"),
    SamplerSpec(name="difference", oracle="entropy"),
    SamplerSpec(name="ppi"),
    SamplerSpec(name="ppi", power_tuning=False),
]


def replay(spec: SamplerSpec, budget: int, repetitions: int) -> dict[str, float]:
    estimates, covered, spent = [], 0, []
    for r in range(repetitions):
        oracle = LabelOracle(LABELS, POOL.predictions)
        result = SAMPLERS.get(spec.name).impl(POOL, oracle, budget, spec.params,
                                              np.random.default_rng(r), 0.95)
        estimates.append(result.estimate)
        covered += result.ci_low <= TRUTH <= result.ci_high
        spent.append(result.labels_spent)
        assert result.labels_spent == oracle.labels_given <= budget
        assert len(np.unique(result.sampled)) == len(result.sampled) == result.labels_spent
        if result.inclusion is not None:
            assert result.inclusion.min() > 0  # every input can be drawn
    e = np.asarray(estimates)
    return {"bias": float(e.mean() - TRUTH), "sd": float(e.std(ddof=1)),
            "coverage": covered / repetitions, "labels": float(np.mean(spent))}


@pytest.mark.parametrize(
    "spec", ESTIMATORS, ids=lambda s: s.display + "-" + getattr(s.params, "fit", "logistic")
)
def test_estimator_unbiased_with_nominal_coverage(spec: SamplerSpec) -> None:
    reps = 120 if spec.name == "deepest" else 300
    out = replay(spec, 100, reps)
    # Unbiased: the mean error is within 3.5 Monte-Carlo standard errors (plus rounding).
    assert abs(out["bias"]) <= 3.5 * out["sd"] / math.sqrt(reps) + 1e-3, out
    # 95 % interval: coverage no lower than the binomial tolerance of `reps` repetitions
    # allows (0.908 at 300), and not a vacuous always-covering interval.
    assert 0.95 - coverage_tolerance(0.95, reps) <= out["coverage"] <= 0.995, out


def test_guided_samplers_beat_srs_on_an_informative_oracle() -> None:
    srs = replay(SamplerSpec(name="srs"), 200, 200)["sd"]
    neyman = replay(SamplerSpec(name="stratified"), 200, 200)["sd"]
    assert neyman < 0.9 * srs


def test_ces_is_a_representative_baseline() -> None:
    out = replay(SamplerSpec(name="ces", groups=50), 60, 60)
    assert abs(out["bias"]) < 0.02
    assert out["labels"] == 60


# ------------------------------------------------------------- exact checks on tiny designs


def test_hansen_hurwitz_is_exactly_unbiased_by_enumeration() -> None:
    z = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
    p = selection_probabilities(np.array([0.9, 0.1, 0.6, 0.2, 0.0]), floor=0.3)
    assert p.min() > 0 and math.isclose(p.sum(), 1.0)
    n = 3
    expectation = second = variance_estimate = 0.0
    for draws in itertools.product(range(len(z)), repeat=n):
        idx = np.array(draws)
        probability = float(np.prod(p[idx]))
        total, var = hansen_hurwitz(z[idx], p[idx])
        expectation += probability * total
        second += probability * total**2
        variance_estimate += probability * var
    assert math.isclose(expectation, z.sum(), rel_tol=1e-12)
    # The HH variance estimator is unbiased too.
    assert math.isclose(variance_estimate, second - expectation**2, rel_tol=1e-9)


def test_horvitz_thompson_is_exactly_unbiased_by_enumeration() -> None:
    z = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    subsets = list(itertools.combinations(range(len(z)), 2))
    weights = np.arange(1, len(subsets) + 1, dtype=float)  # an arbitrary fixed-size design
    design = weights / weights.sum()
    pi = np.zeros(len(z))
    for s, prob in zip(subsets, design, strict=True):
        pi[list(s)] += prob
    expectation = sum(prob * horvitz_thompson(z[list(s)], pi[list(s)])[0]
                      for s, prob in zip(subsets, design, strict=True))
    assert math.isclose(expectation, z.sum(), rel_tol=1e-12)
    assert math.isclose(pi.sum(), 2.0)


def test_pareto_sampling_realises_its_target_inclusion_probabilities() -> None:
    p = selection_probabilities(np.array([0.05, 0.1, 0.2, 0.4, 0.8, 1.6]), floor=0.2)
    lam = inclusion_targets(p, 2)
    assert math.isclose(lam.sum(), 2.0) and lam.max() <= 1.0 and lam.min() > 0
    rng = np.random.default_rng(1)
    counts = np.zeros(len(p))
    draws = 20_000
    for _ in range(draws):
        counts[pareto_sample(lam, 2, rng)] += 1
    assert np.abs(counts / draws - lam).max() < 0.03


def test_inclusion_targets_cap_certainties() -> None:
    lam = inclusion_targets(np.array([0.7, 0.1, 0.1, 0.1]), 2)
    assert lam[0] == 1.0 and math.isclose(lam.sum(), 2.0)


def test_allocation_respects_budget_minimum_and_capacity() -> None:
    sizes = np.array([100, 100, 100, 5])
    for weights in (sizes * np.array([0.1, 0.1, 0.5, 0.5]), sizes.astype(float)):
        n = allocate(60, sizes, weights)
        assert n.sum() == 60 and (n >= 2).all() and (n <= sizes).all()
    assert allocate(400, sizes, sizes.astype(float)).sum() == 305  # capped at the pool


def test_label_oracle_counts_each_input_once() -> None:
    oracle = LabelOracle(np.array([1, 2, 3]), np.array([1, 0, 3]))
    assert oracle.correct([0, 1]).tolist() == [1.0, 0.0]
    oracle.label([1, 2, 2])
    assert oracle.labels_given == 3


def test_every_sampler_registers_params_and_citation() -> None:
    assert SAMPLERS.names() == sorted(
        ["srs", "stratified", "pps", "deepest", "ces", "difference", "ppi"]
    )
    for name, method in SAMPLERS.entries().items():
        assert issubclass(method.params, SamplerParams), name
        assert method.citation and method.summary, name
        assert method.params.__doc__, name


def test_sampler_params_are_validated_by_the_samplers_own_model() -> None:
    spec = SamplerSpec(name="stratified", strata=4, allocation="proportional")
    assert spec.display == "stratified-proportional(msp)"
    assert spec.oracle == "msp"
    assert SamplerSpec(name="srs").oracle is None
    assert SamplerSpec.model_validate(spec.model_dump(mode="json")) == spec
    with pytest.raises(SpecError) as info:
        SamplerSpec(name="srs", strata=4)
    assert info.value.field == "sampling.samplers.strata"
    with pytest.raises(SpecError) as info:
        SamplerSpec(name="magic")
    assert info.value.field == "sampling.samplers.name"
    assert "srs" in str(info.value)
