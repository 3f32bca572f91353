"""The training engine in-process (``faultlab.workers.local.run_local``): the quick example
sweeps finish with curves, summaries and paired comparisons; results replay; bad input is a
SpecError naming the field before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.local import run_local
from faultlab.workers.training.loop import CURVE_KEYS

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


pytestmark = pytest.mark.usefixtures("one_thread")


def _spec(**training: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "variants": [{"family": ["gcn"], "depth": [2], "width": [8]}],
        "recipes": [{"optimizer": "adam", "lr": 0.01, "epochs": 10}],
        "datasets": [{"name": "karate"}],
        "seeds": 1,
        "curve_points": 5,
    }
    return {"kind": "training", "training": {**base, **training}}


def test_dynamics_quick_sweep() -> None:
    report, records = run_local((EXAMPLES / "training-gnn-dynamics-quick.yaml").read_text())
    assert len(records) == 8 * 2
    assert {r.result["status"] for r in records} == {"completed"}
    cells, curves = report.tables["cells"], report.tables["curves"]
    assert len(cells) == 16 and cells["steps_to_target"].notna().all()
    assert list(curves.columns) == ["dataset", "recipe", "variant", "seed", *CURVE_KEYS]
    assert curves.groupby("variant")["step"].max().eq(100).all()
    summary = report.tables["summary"]
    assert len(summary) == 8
    assert (summary["test_acc_ci_low"] <= summary["test_acc"]).all()
    comparisons = report.tables["comparisons"]
    assert set(comparisons["comparison"]) == {"skip:residual", "depth:2->4", "linear->nonlinear"}
    assert (comparisons["n"] == 2).all()
    for name in ("skip:residual", "depth:2->4", "linear->nonlinear"):
        figure = report.summary[name]
        assert figure["ci"][0] <= figure["estimate"] <= figure["ci"][1]
    assert -1.0 <= report.summary["linear_nonlinear_rank_agreement"] <= 1.0
    assert 0.0 <= report.summary["linear_rate_r2_median"] <= 1.0
    assert report.provenance["engine"] == "training"
    report.to_json()


def test_sgc_quick_sweep_compares_with_the_gcn() -> None:
    report, records = run_local((EXAMPLES / "training-sgc-vs-gcn-quick.yaml").read_text())
    assert len(records) == 3 * 2 * 3
    comparisons = report.tables["comparisons"]
    sgc = comparisons[comparisons["comparison"].str.startswith("sgc-gcn")]
    assert len(sgc) == 2 * 2 * 2  # (accuracy, time) × two SGCs × two datasets
    assert set(sgc["a"]) == {"gcn-d2-w16-none-relu"}
    assert report.summary["sgc-gcn:test_acc"]["pairs"] == 12
    assert report.summary["sgc-gcn:time"]["estimate"] > 0
    cells = report.tables["cells"]
    sgc_cells = cells[cells["family"] == "sgc"]
    assert (sgc_cells["precompute_seconds"] > 0).all()
    # A linear classifier on S^K X: the same parameters whatever K (features × classes).
    assert sgc_cells.groupby("dataset")["parameters"].nunique().eq(1).all()


def test_results_replay_and_keys_are_stable() -> None:
    spec = parse_spec(_spec(seeds=2))
    engine = get_engine("training")
    prepared = engine.prepare(spec)
    trials = engine.plan(spec, prepared.meta, 0, [])
    assert engine.plan(spec, prepared.meta, 1, []) == []
    assert [t["seed"] for t in trials] == [0, 1]
    first = engine.run_shard(prepared.context, trials)
    again = engine.run_shard(prepared.context, trials)
    assert all(engine.outcomes_equal(a, b) for a, b in zip(first, again, strict=True))
    keys = {engine.trial_key(spec, prepared.meta, t) for t in trials}
    assert len(keys) == 2


def test_unreachable_loss_target_is_marked_with_a_message() -> None:
    report, records = run_local(_spec(recipes=[
        {"optimizer": "sgd", "lr": 1e-4, "epochs": 5, "loss_target": 1e-3}]))
    assert records[0].result["status"] == "target_not_reached"
    assert records[0].result["steps"] == 5
    assert report.summary["target_not_reached"] == 1
    assert "never reached their loss target" in report.summary["target_message"]


def test_loss_target_stops_early() -> None:
    _, records = run_local(_spec(recipes=[
        {"optimizer": "adam", "lr": 0.05, "epochs": 500, "loss_target": 0.5}]))
    result = records[0].result
    assert result["status"] == "target_reached" and result["steps"] < 500
    assert result["final_loss"] <= 0.5
    assert result["curve"]["step"][-1] == result["steps"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants": [{"dropout": [0.5]}]}, "training.variants.0.dropout"),
        ({"variants": [{"depth": [0]}]}, "training.variants.0.depth"),
        ({"variants": [{"depth": [65]}]}, "training.variants.0.depth"),
        ({"variants": [{"width": [5000]}]}, "training.variants.0.width"),
        ({"variants": [{"skip": ["dense"]}]}, "training.variants.0.skip.0"),
        ({"variants": [{"family": ["mlp"]}]}, "training.variants.0.family.0"),
        ({"recipes": [{"lr": 0}]}, "training.recipes.0.lr"),
        ({"recipes": [{"lr": -0.1}]}, "training.recipes.0.lr"),
        ({"recipes": [{"epochs": 1_000_000}]}, "training.recipes.0.epochs"),
        ({"recipes": [{"optimizer": "lbfgs"}]}, "training.recipes.0.optimizer"),
        ({"recipes": [{"weight_decay": -1}]}, "training.recipes.0.weight_decay"),
        ({"recipes": [{"labels": {"per_class": 2, "fraction": 0.5}}]},
         "training.recipes.0.labels"),
        ({"recipes": [{"name": "a"}, {"name": "a"}]}, "training.recipes"),
        ({"seeds": 0}, "training.seeds"),
        ({"seeds": 1001}, "training.seeds"),
    ],
)
def test_bad_input_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_spec(**change))
    assert info.value.field == field


def test_unknown_dataset_is_rejected_before_training() -> None:
    spec = parse_spec(_spec(datasets=[{"name": "digits"}]))
    with pytest.raises(SpecError) as info:
        get_engine("training").validate(spec)
    assert info.value.field == "training.datasets.0.name"
    assert "karate" in (info.value.allowed or [])


def test_plan_size_is_bounded() -> None:
    spec = parse_spec({**_spec(seeds=1000), "execution": {"max_trials": 10}})
    with pytest.raises(SpecError) as info:
        get_engine("training").validate(spec)
    assert info.value.field == "execution.max_trials"


@pytest.mark.parametrize(("example", "cells"), [
    ("training-gnn-dynamics.yaml", 24 * 2 * 3 * 5),
    ("training-sgc-vs-gcn.yaml", 4 * 1 * 3 * 10),
])
def test_full_examples_validate(example: str, cells: int) -> None:
    spec = parse_spec((EXAMPLES / example).read_text())
    engine = get_engine("training")
    engine.validate(spec)
    params = engine.params(spec)
    assert (len(params.all_variants()) * len(params.recipes) * len(params.datasets)
            * params.seeds) == cells
