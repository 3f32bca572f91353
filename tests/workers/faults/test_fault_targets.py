"""Complete fault sites: per-input activation positions, several targets in one campaign,
GAT attention vectors and layer-norm parameters as weight sites."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from faultlab.client._report_text import headline
from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.faults.inject import Injector
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.faults.sites import dynamic_sites
from faultlab.workers.local import run_local
from faultlab.workers.zoo import model_digest

ENGINE = FaultEngine()


def _spec(faults: dict[str, Any], model: Any = "digits_cnn", dataset: str = "digits",
          size: int | None = 48) -> Any:
    model_spec = model if isinstance(model, dict) else {"name": model}
    return parse_spec({"kind": "faults", "seed": 7, "model": model_spec,
                       "dataset": {"name": dataset, "size": size}, "faults": faults})


def test_per_input_faults_hit_the_recorded_position_of_each_input() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh()).eval()
    x = torch.randn(5, 4)
    (site, *_) = [s for s in dynamic_sites(model, "activation", lambda: model(x), True)
                  if s.module == "1"]
    positions = [0, 3, 5, 3, 1]
    fault = {"site": site.name, "index": positions[0], "indices": positions, "bits": [31]}
    golden = model(x).detach()
    for chunks in ([x], [x[:2], x[2:]]):  # one chunk, or two: positions follow the offset
        with Injector(model, [fault], {site.name: site}, FAULT_MODELS.get("bitflip").impl(),
                      per_sample=True) as injector, torch.no_grad():
            outs, offset = [], 0
            for chunk in chunks:
                injector.reset_calls(offset)
                outs.append(model(chunk))
                offset += len(chunk)
        changed = (torch.cat(outs) != golden).nonzero().tolist()
        assert changed == [[row, col] for row, col in enumerate(positions)]  # sign flips
    assert not model[1]._forward_hooks


def test_per_input_positions_differ_across_inputs_and_replay_reproduces() -> None:
    spec = _spec({"target": "activation", "activation_position": "per_input",
                  "sampling": "uniform", "trials": 10, "bits": [30, 31]})
    prepared = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    for trial in trials:
        (fault,) = trial["faults"]
        site = prepared.meta["workloads"][0]["sites"]["fp32"]
        numel = next(s["numel"] for s in site if s["name"] == fault["site"])
        assert len(fault["indices"]) == 48 and fault["indices"][0] == fault["index"]
        assert len(set(fault["indices"])) > 1 and max(fault["indices"]) < numel
    first = ENGINE.run_shard(prepared.context, trials)
    assert any(r["outcome"] != "masked" for r in first)
    fresh = ENGINE.prepare(spec)
    assert ENGINE.plan(spec, fresh.meta, 0, []) == trials
    for trial, stored in zip(trials, first, strict=True):
        (again,) = ENGINE.run_shard(fresh.context, [trial])
        assert ENGINE.outcomes_equal(stored, again), trial
    same = _spec({"target": "activation", "sampling": "uniform", "trials": 10, "bits": [30, 31]})
    plain = ENGINE.plan(same, ENGINE.prepare(same).meta, 0, [])
    assert all("indices" not in f for t in plain for f in t["faults"])  # default: same position


@pytest.mark.parametrize("faults,dataset,field", [
    ({"activation_position": "per_input"}, "digits", "faults.activation_position"),
    ({"target": ["activation"], "activation_position": "everywhere"}, "digits",
     "faults.activation_position"),
    ({"target": ["weight", "kernel"]}, "digits", "faults.target"),
    ({"target": ["activation", "embedding"]}, "karate", "faults.target"),
])
def test_bad_target_settings_name_the_field(faults: dict, dataset: str, field: str) -> None:
    with pytest.raises(SpecError) as err:
        _spec(faults, dataset=dataset)
    assert err.value.field == field, str(err.value)


def test_per_input_on_a_graph_model_is_refused_at_validation() -> None:
    spec = _spec({"target": "activation", "activation_position": "per_input"}, model="gcn",
                 dataset="karate", size=None)
    with pytest.raises(SpecError) as err:
        ENGINE.validate(spec)
    assert err.value.field == "faults.activation_position" and "same" in str(err.value.allowed)


def test_multi_target_campaign_is_planned_and_reported_per_target(tmp_path: Any) -> None:
    spec = _spec({"target": ["weight", "activation", "message"], "sampling": "stratified",
                  "stratify": ["dtype"], "margin": 0.25, "bits": [30, 22]}, model="gcn",
                 dataset="karate", size=None)
    ENGINE.validate(spec)
    report, records = run_local(spec)
    by_target: dict[str, set[str]] = {}
    for r in records:
        by_target.setdefault(r.trial["target"], set()).add(r.trial["stratum"])
    assert set(by_target) == {"weight", "activation", "message"}
    assert all(len(keys) == 1 and next(iter(keys)).split("|")[1] == t
               for t, keys in by_target.items())  # one stratum per target here
    per_target = report.tables["per_target"].set_index("target")
    assert set(per_target.index) == {"weight", "activation", "message"}
    for t, row in per_target.iterrows():
        assert row["trials"] == sum(r.trial["target"] == t for r in records)
        assert row["sdc_ci_low"] <= row["sdc_rate"] <= row["sdc_ci_high"]
        assert row["population"] > 0
    assert set(report.table(readable=False)["target"]) == {"weight", "activation", "message"}
    assert report.summary["targets"] == ["weight", "activation", "message"]
    s = report.summary
    assert min(per_target["sdc_rate"]) <= s["sdc_rate"] <= max(per_target["sdc_rate"])
    assert "per_target.png" in {p.name for p in report.save_plots(tmp_path)}
    lines = headline(report)
    assert "weight, activation, message" in lines[0]
    assert {line.split(" faults (")[0] for line in lines if " faults (" in line} == {
        "weight", "activation", "message"}


def test_multi_target_layer_names_apply_across_targets() -> None:
    faults = {"target": ["weight", "message"], "layers": ["conv1.lin", "conv1"],
              "sampling": "uniform", "trials": 4}
    prepared = ENGINE.prepare(_spec(faults, model="gcn", dataset="karate", size=None))
    sites = prepared.meta["workloads"][0]["sites"]["fp32"]
    assert {(s["target"], s["name"]) for s in sites} == {
        ("weight", "conv1.lin.weight"), ("message", "conv1:message#0")}
    for layers, close in ((["conv9"], "conv1"), (["conv2"], "conv1.lin")):
        with pytest.raises(SpecError) as err:  # unknown anywhere; or no weight site named
            ENGINE.validate(_spec({**faults, "layers": layers}, model="gcn", dataset="karate",
                                  size=None))
        assert err.value.field == "faults.layers" and close in str(err.value.allowed)


def test_gat_attention_vectors_are_weight_sites() -> None:
    spec = _spec({"target": "weight", "sampling": "uniform", "trials": 16, "bits": [30],
                  "layers": ["conv1.att_src", "conv2.att_dst"]}, model="gat", dataset="karate",
                 size=None)
    ENGINE.validate(spec)
    prepared = ENGINE.prepare(spec)
    (wl,) = prepared.context.workloads.values()
    assert set(wl.sites["fp32"]) == {"conv1.att_src", "conv2.att_dst"}
    assert wl.sites["fp32"]["conv1.att_src"].shape == [1, 4, 8]
    default = ENGINE.prepare(_spec({"target": "weight", "sampling": "uniform", "trials": 1},
                                   model="gat", dataset="karate", size=None))
    assert {"conv1.att_src", "conv1.att_dst", "conv1.lin.weight"} <= set(
        next(iter(default.context.workloads.values())).sites["fp32"])
    before = model_digest(wl.models["fp32"])
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    results = ENGINE.run_shard(prepared.context, trials)
    assert model_digest(wl.models["fp32"]) == before
    assert any(r["outcome"] != "masked" for r in results)  # exponent flips in attention matter


def test_layer_norm_parameters_are_targetable_by_name() -> None:
    model = {"name": "pyg:GCN", "weights": "random",
             "options": {"hidden_channels": 8, "num_layers": 2, "norm": "layer_norm"}}
    for target in ("weight", "bias"):
        spec = _spec({"target": target, "layers": ["norms.0"], "sampling": "uniform",
                      "trials": 12, "bits": [30]}, model=model, dataset="karate", size=None)
        ENGINE.validate(spec)
        prepared = ENGINE.prepare(spec)
        (wl,) = prepared.context.workloads.values()
        assert set(wl.sites["fp32"]) == {f"norms.0.{target}"}
        before = model_digest(wl.models["fp32"])
        results = ENGINE.run_shard(prepared.context, ENGINE.plan(spec, prepared.meta, 0, []))
        assert model_digest(wl.models["fp32"]) == before
        assert any(r["outcome"] != "masked" for r in results)
