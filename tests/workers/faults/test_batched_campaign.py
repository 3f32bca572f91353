"""Batched fault execution in campaigns (``execution.batch_faults``) on the CPU: K weight, bias
or activation faults per forward (image models: folded suffix; PyG models: a disjoint-union
graph) give, trial by trial, the results of the sequential path."""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.spec import parse_spec
from faultlab.workers.engine import shard_device
from faultlab.workers.faults.engine import FaultContext, FaultEngine
from faultlab.workers.faults.workload import Workload
from tests.marks import slow

ENGINE = FaultEngine()


def _spec(target: str, batch: Any, model: str = "digits_cnn", trials: int = 60,
          dataset: str = "digits", layers: list[str] | None = None) -> Any:
    faults: dict[str, Any] = {"target": target, "sampling": "uniform", "trials": trials,
                              "bits": [0, 15, 22, 23, 26, 29, 30, 31]}
    if layers:
        faults["layers"] = layers
    return parse_spec({"kind": "faults", "seed": 11, "model": {"name": model},
                       "dataset": {"name": dataset, "size": 96}, "faults": faults,
                       "execution": {"batch_faults": batch}})


def _outcomes(ctx: FaultContext, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return ENGINE.run_shard(ctx, trials)


@pytest.mark.parametrize("target,model,layers,dataset", [
    ("weight", "digits_cnn", None, "digits"),
    ("bias", "digits_cnn", None, "digits"),
    ("weight", "resnet_small", None, "digits"),
    ("activation", "digits_cnn", None, "digits"),
    ("activation", "resnet_small", ["layers.2.relu2", "fc"], "digits"),
    ("weight", "gcn", None, "karate"),
    ("activation", "gcn", None, "karate"),
    ("aggregation", "gcn", None, "karate"),
    ("weight", "sage", None, "karate"),
])
def test_batched_equals_sequential_trial_by_trial(target: str, model: str,
                                                  layers: list[str] | None,
                                                  dataset: str) -> None:
    trials = 24 if target == "activation" else 60  # sequential: full forwards
    spec = _spec(target, 8, model=model, layers=layers, dataset=dataset, trials=trials)
    ENGINE.validate(spec)
    prepared = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    batched = _outcomes(prepared.context, trials)
    sequential_ctx = FaultContext(prepared.context.params, prepared.context.workloads, "off")
    sequential = _outcomes(sequential_ctx, trials)
    assert any("batch_faults" in r for r in batched), "nothing ran batched"
    assert not any("batch_faults" in r for r in sequential)
    for trial, b, s in zip(trials, batched, sequential, strict=True):
        assert b["outcome"] == s["outcome"], trial
        assert ENGINE.outcomes_equal(s, b), (trial, s, b)


def test_auto_measures_once_per_layer_and_replay_is_exact() -> None:
    spec = _spec("weight", "auto", trials=80)
    prepared = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    results = _outcomes(prepared.context, trials)
    wl: Workload = next(iter(prepared.context.workloads.values()))
    assert wl.batch_faster, "auto decided nothing"
    assert set(wl.batch_faster) <= {("fp32", s.module) for s in wl.sites["fp32"].values()}
    replayed = [ENGINE.run_shard(prepared.context, [t])[0] for t in trials[:10]]
    for stored, again in zip(results, replayed, strict=False):
        assert ENGINE.outcomes_equal(stored, again)


def test_graph_sites_that_are_not_node_rows_run_one_by_one() -> None:
    """GCNConv's own bias is added after message passing (its inputs include edge_index, not
    node rows): those trials run sequentially, the Linear weights inside run batched."""
    spec = _spec("bias", 16, model="gcn", dataset="karate", trials=24)
    prepared = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    results = _outcomes(prepared.context, trials)
    wl: Workload = next(iter(prepared.context.workloads.values()))
    assert wl._exact.get(("fp32", "conv1.bias")) is False
    assert not any("batch_faults" in r for r in results)


def test_off_never_batches_and_k_caps_the_batch() -> None:
    spec = _spec("weight", 4, trials=40, layers=["fc2"])
    prepared = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    results = _outcomes(prepared.context, trials)
    assert max(r.get("batch_faults", 1) for r in results) == 4
    off = FaultContext(prepared.context.params, prepared.context.workloads, "off")
    assert all("batch_faults" not in r for r in _outcomes(off, trials))


def test_mitigated_arms_run_sequentially() -> None:
    spec = parse_spec({"kind": "faults", "seed": 2, "model": {"name": "digits_cnn"},
                       "dataset": {"name": "digits", "size": 64},
                       "faults": {"target": "weight", "sampling": "uniform", "trials": 12,
                                  "mitigations": [{"name": "ranger"}]},
                       "execution": {"batch_faults": 8}})
    prepared = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    off = FaultContext(prepared.context.params, prepared.context.workloads, "off")
    for b, s in zip(_outcomes(prepared.context, trials), _outcomes(off, trials), strict=True):
        assert ENGINE.outcomes_equal(s, b)
        assert "batch_faults" not in b["mitigated"]["ranger"]


def test_shards_run_on_the_cpu_without_a_gpu_assignment() -> None:
    assert shard_device().type == "cpu"


SLOW = slow


@pytest.mark.parametrize("model,options", [
    ("resnet18", {"width": 8}),
    pytest.param("mobilenet_v2", {"width_mult": 0.25}, marks=[pytest.mark.slow, SLOW]),
])
def test_cifar_size_models_batched_equals_sequential(model: str, options: dict[str, Any]) -> None:
    """The CIFAR-size zoo entries on 3×32×32 ``shapes32`` images (reduced width, one epoch)."""
    spec = parse_spec({"kind": "faults", "seed": 3,
                       "model": {"name": model, "options": {**options, "epochs": 1}},
                       "dataset": {"name": "shapes32", "size": 32},
                       "faults": {"target": "weight", "sampling": "uniform", "trials": 24},
                       "execution": {"batch_faults": 8}})
    prepared = ENGINE.prepare(spec)
    assert prepared.meta["workloads"][0]["inputs"] == 32
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    batched = _outcomes(prepared.context, trials)
    off = FaultContext(prepared.context.params, prepared.context.workloads, "off")
    for b, s in zip(batched, _outcomes(off, trials), strict=True):
        assert ENGINE.outcomes_equal(s, b)
