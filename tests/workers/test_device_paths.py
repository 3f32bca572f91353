"""The device path of the engines on the CPU: ``on_device`` hands each engine's context to its
``to_device`` (as a Ray worker does once per campaign), the moved context says where it runs,
and the shards give the very results of the unmoved one."""

from __future__ import annotations

from typing import Any

import torch

from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.engine import device_boundary, move_to
from faultlab.workers.tasks import ShardContext, on_device

CPU = torch.device("cpu")


def _results_match(kind: str, spec: dict[str, Any], count: int) -> Any:
    parsed = parse_spec(spec)
    engine = get_engine(kind)
    prepared = engine.prepare(parsed)
    trials = engine.plan(parsed, prepared.meta, 0, [])[:count]
    assert trials
    moved = on_device(kind, ShardContext(prepared.context))
    here = engine.run_shard(prepared.context, trials)
    there = engine.run_shard(moved, trials)
    for a, b in zip(here, there, strict=True):
        assert engine.outcomes_equal(a, b), (a, b)
    return moved


def test_sparsity_cells_run_on_the_moved_context() -> None:
    spec = {"kind": "sparsity", "seed": 3, "model": {"name": "digits_cnn"},
            "dataset": {"name": "digits", "size": 60},
            "sparsity": {"methods": ["magnitude"], "schedules": ["one_shot"],
                         "levels": {"values": [0.5]}, "seeds": 1,
                         "finetune": {"epochs": 0.05, "batch_size": 32},
                         "low_rank": {"rank_ratios": [0.5]},
                         "latency": {"repeats": 1, "warmup": 0}}}
    moved = _results_match("sparsity", spec, 2)
    assert moved.device == "cpu"
    assert next(moved.model.parameters()).device == CPU


def test_sampling_improve_cycle_runs_behind_the_device_boundary() -> None:
    spec = {"kind": "sampling", "seed": 0,
            "sampling": {"oracles": ["msp"], "mode": "improve", "budget": 30,
                         "pool": {"shifts": [{"name": "clean"}]},
                         "samplers": [{"name": "srs"}],
                         "improve": {"iterations": 1, "repetitions": 1, "epochs": 1}}}
    _results_match("sampling", spec, 1)


def test_move_to_walks_graphs_and_dataclasses() -> None:
    from torch_geometric.data import Data

    from faultlab.workers.zoo.registry import GraphData

    graph = GraphData("g", Data(x=torch.ones(3, 2), edge_index=torch.zeros(2, 1).long()), 2)
    moved = move_to({"g": graph, "t": (torch.ones(1),)}, CPU)
    assert moved["g"].data.x.device == CPU and moved["t"][0].device == CPU


def test_the_device_boundary_is_a_no_op_on_the_cpu() -> None:
    model = torch.nn.Linear(2, 2)
    assert device_boundary(model, CPU) is model
    assert not model._forward_hooks and not model._forward_pre_hooks
