"""Sampling engine: spec errors naming their field and end-to-end campaigns on digits (the
samplers and pseudo-oracles are tested in ``tests/workers/sampling``)."""

from __future__ import annotations

import math

import pytest

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.local import run_local

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
    table = report.table("replay", readable=False)
    assert len(records) == 7 * 2 * 8
    assert set(table["sampler"]) == {"srs", "stratified-neyman(msp)", "pps-ht(msp)",
                                     "deepest(dsa)", "ces", "difference(lsa)", "ppi++(mc_dropout)"}
    assert table["rmse"].notna().all() and table["coverage"].between(0, 1).all()
    assert (table["labels_spent"] <= table["budget"]).all()
    assert report.summary["pool_size"] == 1080
    assert 0.5 < report.summary["true_accuracy"] < 1.0
    oracles = report.table("oracles", readable=False).set_index("oracle")
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
    assess = report.table("assess", readable=False).set_index("sampler")
    for sampler, row in assess.iterrows():
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        sampled = report.table("sampled", readable=False)
        mine = sampled[sampled["sampler"] == sampler]
        assert len(mine) == row["labels_spent"] and mine["pool_id"].is_unique
    assert assess.loc["stratified-neyman(ensemble)", "labels_spent"] == 40


def test_improve_campaign_compares_with_the_random_control() -> None:
    spec = spec_with(mode="improve", budget=40, samplers=[{"name": "pps"}],
                     improve={"iterations": 1, "repetitions": 1, "epochs": 2})
    report, records = run_local(spec)
    summary = report.table("daic_summary", readable=False)
    assert set(summary["arm"]) == {"pps-ht(msp)", "control(srs)"}
    assert set(summary["iteration"]) == {0, 1}
    assert report.summary["daic_arm"] == "pps-ht(msp)"
    assert math.isfinite(report.summary["daic_gain"])
    cycle = report.table("daic", readable=False)
    assert (cycle.groupby("arm")["labels_total"].max() == 80).all()
    assert "daic_iterations" in __import__(
        "faultlab.workers.sampling.plots", fromlist=["plot"]).plot(report)
