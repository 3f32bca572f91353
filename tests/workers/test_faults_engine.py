"""Fault campaigns end to end (in-process): reports, exact restore after every trial, replay,
adaptive stopping, GNN campaigns, mitigation A/B and spec errors that need the model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.engine import TrialRecord
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.faults.planning import stratum_interval
from faultlab.workers.local import run_local
from faultlab.workers.zoo import model_digest

ENGINE = FaultEngine()


def _spec(faults: dict[str, Any], model: str = "digits_cnn", dataset: str = "digits",
          size: int | None = 120, **extra: Any) -> Any:
    return parse_spec({"kind": "faults", "seed": 5, "model": {"name": model},
                       "dataset": {"name": dataset, "size": size}, "faults": faults, **extra})


def test_demo_example_spec_is_valid_and_small() -> None:
    spec = parse_spec(Path("examples/fault-digits.yaml"))
    assert spec.kind == "faults"
    ENGINE.validate(spec)


def test_weight_campaign_report_has_rates_cis_and_provenance() -> None:
    report, records = run_local(_spec({"sampling": "stratified", "stratify": ["layer"],
                                       "margin": 0.2, "layers": ["conv1", "fc2"]}))
    assert len(records) == 2 * 24  # Leveugle: 1.96² · 0.25 / 0.2² → 24 per layer
    table = report.table(readable=False)
    assert report.primary == "per_layer"
    assert set(table["layer"]) == {"conv1.weight", "fc2.weight"}
    for col in ("sdc", "critical_sdc", "due", "masked"):
        assert ((table[f"{col}_ci_low"] <= table[f"{col}_rate"])
                & (table[f"{col}_rate"] <= table[f"{col}_ci_high"])).all()
    assert {"per_bit", "layer_bit", "per_model"} <= set(report.tables)
    s = report.summary
    assert s["trials"] == 48 and 0 <= s["sdc_ci_low"] <= s["sdc_rate"] <= s["sdc_ci_high"] <= 1
    prov = report.provenance
    assert {"spec_hash", "code_version", "seed", "engine_version", "model_digest",
            "dataset_digest"} <= set(prov)
    assert report.to_json()  # JSON-able, no NaN


@pytest.fixture(scope="module")
def mixed() -> tuple[Any, Any]:
    spec = _spec({"target": "activation", "sampling": "uniform", "trials": 24,
                  "dtypes": ["fp32", "bf16"], "mitigations": [{"name": "ranger"}]})
    prepared = ENGINE.prepare(spec)
    return spec, prepared


def test_model_is_bit_identical_after_every_trial(mixed: tuple[Any, Any]) -> None:
    spec, prepared = mixed
    wl = next(iter(prepared.context.workloads.values()))
    weight_spec = _spec({"sampling": "uniform", "trials": 24, "dtypes": ["fp32", "bf16"],
                         "fault_model": "multi_bitflip", "bit_count": 3})
    weight_prepared = ENGINE.prepare(weight_spec)
    weight_wl = next(iter(weight_prepared.context.workloads.values()))
    for sp, prep, w in [(spec, prepared, wl), (weight_spec, weight_prepared, weight_wl)]:
        digests = {dt: model_digest(m) for dt, m in w.models.items()}
        trials = ENGINE.plan(sp, prep.meta, 0, [])
        assert {t["dtype"] for t in trials} == {"fp32", "bf16"}
        for trial in trials:
            ENGINE.run_shard(prep.context, [trial])
            for dt, m in w.models.items():
                assert model_digest(m) == digests[dt], trial
            assert all(not m._forward_hooks for m in w.models[trial["dtype"]].modules())


def test_replay_reproduces_every_outcome(mixed: tuple[Any, Any]) -> None:
    spec, prepared = mixed
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    first = ENGINE.run_shard(prepared.context, trials)
    fresh = ENGINE.prepare(spec)  # another worker: its own golden run
    assert ENGINE.plan(spec, fresh.meta, 0, []) == trials
    for trial, stored in zip(trials, first, strict=True):
        (again,) = ENGINE.run_shard(fresh.context, [trial])
        assert ENGINE.outcomes_equal(stored, again), trial
        assert "seed" in trial and trial["faults"]


def test_adaptive_stops_each_stratum_at_the_margin() -> None:
    faults = {"sampling": "adaptive", "layers": ["fc2"], "bits": [31, 30, 22, 0],
              "margin": 0.1, "pilot_trials": 12, "max_rounds": 30, "stop_on": "critical_sdc"}
    spec = _spec(faults)
    report, records = run_local(spec)
    by: dict[str, list[TrialRecord]] = {}
    for r in records:
        by.setdefault(r.trial["stratum"], []).append(r)
    z = 1.959964
    for stratum, recs in by.items():
        n = len(recs)
        k = sum(r.result["outcome"] == "critical_sdc" for r in recs)
        ordinals = sorted(r.trial["ordinal"] for r in recs)
        assert ordinals == list(range(n))  # no fault sampled twice, rounds continue the order
        _, lo, hi = stratum_interval(640, n, k, z)
        assert (hi - lo) / 2 <= 0.1 or n == 640, stratum
    assert report.summary["rounds"] >= 2
    fixed = len(ENGINE.plan(_spec({**faults, "sampling": "stratified"}),
                            {"workloads": records_meta(spec)}, 0, []))
    assert len(records) < fixed  # adaptive beats the worst-case Leveugle size


def records_meta(spec: Any) -> Any:
    return ENGINE.prepare(spec).meta["workloads"]


def test_gnn_campaign_reports_degree_and_nodes_affected() -> None:
    spec = _spec({"target": "aggregation", "sampling": "uniform", "trials": 30,
                  "mitigations": [{"name": "gnn_bound"}]}, model="gcn", dataset="karate",
                 size=None)
    report, records = run_local(spec)
    assert len(records) == 30
    assert all("nodes_affected" in r.result for r in records)
    deg = report.tables["by_degree"]
    assert set(deg["mitigation"]) == {"none", "gnn_bound"} and (deg["nodes"] > 0).all()
    assert "mitigation" in report.tables
    assert report.tables["per_model"]["workload"].iloc[0] == "gcn@karate"


def test_ranger_reduces_critical_sdc_on_the_identical_fault_plan() -> None:
    spec = _spec({"sampling": "uniform", "trials": 60, "bits": [30],
                  "mitigations": [{"name": "ranger"}, {"name": "clipping"}]})
    report, records = run_local(spec)
    mit = report.tables["mitigation"].set_index("mitigation")
    for name in ("ranger", "clipping"):
        assert mit.loc[name, "critical_sdc_rate"] < mit.loc[name, "critical_sdc_rate_none"]
        assert mit.loc[name, "trials_fixed"] > mit.loc[name, "trials_broken"]
        assert not math.isnan(mit.loc[name, "overhead"])
    # identical plan: each record carries every arm of the same faults
    assert all(set(r.result["mitigated"]) == {"ranger", "clipping"} for r in records)


@pytest.mark.parametrize(
    "faults,field,allowed",
    [
        ({"layers": ["conv3"]}, "faults.layers", "conv1"),
        ({"layers": ["fc"]}, "faults.layers", "fc1"),
        ({"target": "activation", "layers": ["relu9"]}, "faults.layers", "relu1"),
        ({"dtypes": ["int8"]}, "faults.dtypes", "fp32"),
        ({"target": "message"}, "faults.target", "weight"),
        ({"mitigations": [{"name": "gnn_bound"}]}, "faults.mitigations[0].name", "ranger"),
        ({"mitigations": [{"name": "ranger", "layers": ["relu7"]}]},
         "faults.mitigations[0].layers", "relu1"),
        ({"compare_models": [{"name": "gcn"}]}, "faults.compare_models[0].name", "digits_cnn"),
        ({"compare_datasets": [{"name": "mnist"}]}, "faults.compare_datasets[0].name", "digits"),
    ],
)
def test_bad_inputs_that_need_the_model_name_the_field(faults: dict, field: str,
                                                       allowed: str) -> None:
    with pytest.raises(SpecError) as err:
        ENGINE.validate(_spec(faults))
    assert err.value.field == field, str(err.value)
    assert allowed in (err.value.allowed or ""), str(err.value)


def test_plans_above_the_trial_limit_are_refused() -> None:
    spec = _spec({"margin": 0.01}, execution={"max_trials": 1000})
    prepared = ENGINE.prepare(spec)
    with pytest.raises(SpecError) as err:
        ENGINE.plan(spec, prepared.meta, 0, [])
    assert err.value.field == "execution.max_trials"


def test_int8_campaign_flips_stored_integers_of_a_quantized_model() -> None:
    spec = parse_spec({"kind": "faults", "seed": 2,
                       "model": {"name": "digits_cnn", "transforms": [{"name": "int8_dynamic"}]},
                       "dataset": {"name": "digits", "size": 60},
                       "faults": {"dtypes": ["int8"], "sampling": "uniform", "trials": 16}})
    prepared = ENGINE.prepare(spec)
    (wl,) = prepared.context.workloads.values()
    sites = wl.sites["int8"]
    assert set(sites) == {"fc1.weight", "fc2.weight"}  # dynamic quantization: linear layers
    assert all(s.width == 8 and s.torch_dtype == "int8" for s in sites.values())
    before = model_digest(wl.models["int8"])
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    assert all(0 <= t["faults"][0]["bits"][0] < 8 for t in trials)
    for trial in trials:
        ENGINE.run_shard(prepared.context, [trial])
        assert model_digest(wl.models["int8"]) == before


def test_model_dataset_grid_and_plots(tmp_path: Any) -> None:
    spec = parse_spec({
        "kind": "faults", "seed": 4, "model": {"name": "sgc"}, "dataset": {"name": "karate"},
        "faults": {"compare_models": [{"name": "gcn"}],
                   "compare_datasets": [{"name": "sbm", "options": {"num_nodes": 120}}],
                   "sampling": "stratified", "stratify": ["layer", "bit"], "bits": [30, 22],
                   "margin": 0.4, "mitigations": [{"name": "gnn_bound"}]}})
    report, records = run_local(spec)
    workloads = {"sgc@karate", "sgc@sbm", "gcn@karate", "gcn@sbm"}
    assert set(report.tables["per_model"]["workload"]) == workloads
    assert {r.trial["workload"] for r in records} == workloads
    assert len(set(report.provenance["workloads"])) == 4
    paths = {p.name for p in report.save_plots(tmp_path)}
    assert {"per_layer.png", "per_model.png", "by_degree.png"} <= paths
    assert any(p.startswith("heatmap_gcn_karate") for p in paths)


def test_ber_campaign_runs_and_restores() -> None:
    spec = _spec({"ber": 2e-6, "sampling": "uniform", "trials": 12, "stratify": ["layer"],
                  "dtypes": ["fp32", "fp16"]}, size=40)
    prepared = ENGINE.prepare(spec)
    (wl,) = prepared.context.workloads.values()
    before = {dt: model_digest(m) for dt, m in wl.models.items()}
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    assert any(len(t["faults"]) != 1 for t in trials)  # Binomial counts, zero included
    for trial in trials:
        sites = {f["site"] for f in trial["faults"]}
        assert len(sites) <= 1  # stratified by layer: one tensor per trial
        (result,) = ENGINE.run_shard(prepared.context, [trial])
        if not trial["faults"]:
            assert result["outcome"] == "masked"
        assert {dt: model_digest(m) for dt, m in wl.models.items()} == before
