"""Sampling engine: estimators on synthetic pools with known truth, exact HH/HT checks on
enumerable designs, spec errors naming their field, and end-to-end campaigns on digits."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.local import run_local
from faultlab.workers.sampling.params import ORACLES, SAMPLERS, SHIFTS, SamplerSpec
from faultlab.workers.sampling.samplers import (
    LabelOracle,
    OperationalPool,
    OracleScores,
    run_sampler,
    sampler_registry,
)
from faultlab.workers.sampling.samplers.pps import (
    hansen_hurwitz,
    horvitz_thompson,
    inclusion_targets,
    pareto_sample,
    selection_probabilities,
)
from faultlab.workers.sampling.samplers.stratified import allocate

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
        result = run_sampler(POOL, oracle, budget, spec, np.random.default_rng(r), 0.95)
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


@pytest.mark.parametrize("spec", ESTIMATORS, ids=lambda s: s.display + "-" + s.fit)
def test_estimator_unbiased_with_nominal_coverage(spec: SamplerSpec) -> None:
    reps = 120 if spec.name == "deepest" else 300
    out = replay(spec, 100, reps)
    # Unbiased: the mean error is within 3.5 Monte-Carlo standard errors (plus rounding).
    assert abs(out["bias"]) <= 3.5 * out["sd"] / math.sqrt(reps) + 1e-3, out
    # 95 % interval: coverage within a band that 300 repetitions resolve (SE ≈ 1.3 points).
    assert 0.88 <= out["coverage"] <= 0.995, out


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


def test_registries_match_the_spec_names() -> None:
    from faultlab.workers.sampling.oracles import oracle_registry
    from faultlab.workers.sampling.shifts import shift_registry

    assert sorted(sampler_registry()) == sorted(SAMPLERS)
    assert sorted(oracle_registry()) == sorted(ORACLES)
    assert sorted(shift_registry()) == sorted(SHIFTS)


# ------------------------------------------------------------------------------ bad input

SMALL_POOL = {"shifts": [{"name": "clean"}, {"name": "gaussian_noise", "severity": 0.3}]}


def spec_with(**section: object) -> dict[str, object]:
    return {"kind": "sampling", "seed": 0,
            "sampling": {"oracles": ["msp"], "pool": SMALL_POOL, **section}}


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"budgets": [50, 0]}, "sampling.budgets.1"),
        ({"budgets": [-5]}, "sampling.budgets.0"),
        ({"mode": "assess", "budget": 0}, "sampling.budget"),
        ({"samplers": [{"name": "magic"}]}, "sampling.samplers.0.name"),
        ({"samplers": [{"name": "srs"}, {"name": "pps", "oracle": "tea_leaves"}]},
         "sampling.samplers.1.oracle"),
        ({"oracles": ["msp", "vibes"]}, "sampling.oracles.1"),
        ({"budgets": [30], "samplers": [{"name": "stratified", "strata": 40}]},
         "sampling.samplers.0.strata"),
        ({"mode": "assess", "budget": 10, "samplers": [{"name": "stratified", "strata": 6}]},
         "sampling.samplers.0.strata"),
        ({"samplers": [{"name": "srs", "strata": 4}]}, "sampling.samplers.0.strata"),
        ({"samplers": [{"name": "srs"}, {"name": "srs"}]}, "sampling.samplers.1.label"),
        ({"pool": {"class_prior": [1.0, -1.0]}}, "sampling.pool.class_prior"),
        ({"confidence": 1.5}, "sampling.confidence"),
    ],
)
def test_bad_sections_name_their_field(section: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(**section))
    assert info.value.field == field


def test_normalised_spec_validates_again() -> None:
    """The coordinator re-parses ``to_dict()``, which carries every option of every sampler."""
    spec = parse_spec(spec_with(samplers=[{"name": "srs"}, {"name": "ces", "groups": 10},
                                          {"name": "pps", "estimator": "hh"}]))
    again = parse_spec(spec.to_dict())
    assert again.spec_hash == spec.spec_hash


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"budgets": [50, 5000]}, "sampling.budgets.1"),
        ({"mode": "assess", "budget": 1081}, "sampling.budget"),
        ({"mode": "improve", "budget": 300}, "sampling.budget"),
        ({"pool": {**SMALL_POOL, "class_prior": [1.0, 2.0]}}, "sampling.pool.class_prior"),
        ({"pool": {**SMALL_POOL, "holdout_fraction": 0.1, "holdout_classes": [12]}},
         "sampling.pool.holdout_classes"),
        ({"oracle_settings": {"layer": "fc9"}}, "sampling.oracle_settings.layer"),
    ],
)
def test_checks_needing_the_pool_name_their_field(section: dict[str, object],
                                                  field: str) -> None:
    spec = parse_spec(spec_with(**section))  # 540 test inputs × 2 shifts = 1080 pool inputs
    with pytest.raises(SpecError) as info:
        get_engine("sampling").validate(spec)
    assert info.value.field == field


# ---------------------------------------------------------------------- end to end (digits)


def test_replay_campaign_end_to_end() -> None:
    spec = spec_with(
        mode="replay", budgets=[20, 60], repetitions=8,
        oracles=["msp", "entropy", "margin", "mc_dropout", "lsa", "dsa"],
        samplers=[{"name": "srs"}, {"name": "stratified", "strata": 5},
                  {"name": "pps"}, {"name": "deepest", "oracle": "dsa"},
                  {"name": "ces", "groups": 20}, {"name": "difference", "oracle": "lsa"},
                  {"name": "ppi", "oracle": "mc_dropout"}],
    )
    report, records = run_local(spec)
    table = report.table("replay")
    assert len(records) == 7 * 2 * 8
    assert set(table["sampler"]) == {"srs", "stratified-neyman(msp)", "pps-ht(msp)",
                                     "deepest(dsa)", "ces", "difference(lsa)", "ppi++(mc_dropout)"}
    assert table["rmse"].notna().all() and table["coverage"].between(0, 1).all()
    assert (table["labels_spent"] <= table["budget"]).all()
    assert report.summary["pool_size"] == 1080
    assert 0.5 < report.summary["true_accuracy"] < 1.0
    oracles = report.table("oracles").set_index("oracle")
    assert oracles.loc["msp", "auroc"] > 0.7
    assert {"rmse_vs_budget", "coverage_vs_budget"} <= set(
        __import__("faultlab.workers.sampling.plots", fromlist=["plot"]).plot(report))
    # Trials replay exactly from their record (deterministic in their seed).
    engine = get_engine("sampling")
    parsed = parse_spec(spec)
    prepared = engine.prepare(parsed)
    again = engine.run_shard(prepared.context, [records[5].trial, records[-1].trial])
    assert engine.outcomes_equal(records[5].result, again[0])
    assert engine.outcomes_equal(records[-1].result, again[1])


def test_assess_campaign_returns_estimate_ci_and_sampled_inputs() -> None:
    spec = spec_with(mode="assess", budget=40, oracles=["msp", "ensemble"],
                     oracle_settings={"ensemble_members": 2},
                     samplers=[{"name": "stratified", "oracle": "ensemble", "strata": 4},
                               {"name": "pps", "estimator": "hh"}])
    report, _ = run_local(spec)
    assess = report.table("assess").set_index("sampler")
    for sampler, row in assess.iterrows():
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        sampled = report.table("sampled")
        mine = sampled[sampled["sampler"] == sampler]
        assert len(mine) == row["labels_spent"] and mine["pool_id"].is_unique
    assert assess.loc["stratified-neyman(ensemble)", "labels_spent"] == 40


def test_improve_campaign_compares_with_the_random_control() -> None:
    spec = spec_with(mode="improve", budget=40, samplers=[{"name": "pps"}],
                     improve={"iterations": 1, "repetitions": 1, "epochs": 2})
    report, records = run_local(spec)
    summary = report.table("daic_summary")
    assert set(summary["arm"]) == {"pps-ht(msp)", "control(srs)"}
    assert set(summary["iteration"]) == {0, 1}
    assert report.summary["daic_arm"] == "pps-ht(msp)"
    assert math.isfinite(report.summary["daic_gain"])
    cycle = report.table("daic")
    assert (cycle.groupby("arm")["labels_total"].max() == 80).all()
    assert "daic_iterations" in __import__(
        "faultlab.workers.sampling.plots", fromlist=["plot"]).plot(report)
