"""A worker keeps a workload warm across campaigns of the same content, and only those.

``prepare`` stamps each workload with a digest of its content (tensors by value: torch's own
pickling names storages by address); ``to_device`` hands a later campaign of the same digest
the workload this process already holds, with its derived state built, and gives the same
outcomes a fresh copy gives."""

from __future__ import annotations

from typing import Any

import torch

from faultlab.spec import parse_spec
from faultlab.workers.faults import warm
from faultlab.workers.faults.engine import FaultEngine

ENGINE = FaultEngine()
CPU = torch.device("cpu")


def spec(**faults: Any) -> Any:
    return parse_spec({"kind": "faults", "seed": faults.pop("seed", 0),
                       "model": {"name": "digits_cnn"}, "dataset": {"name": "digits", "size": 16},
                       "faults": {"sampling": "uniform", "trials": 64, **faults}})


def stamp(s: Any) -> str:
    (workload,) = ENGINE.prepare(s).context.workloads.values()
    assert len(workload.fingerprint) == 64
    return workload.fingerprint


def test_the_fingerprint_is_the_content_and_nothing_else() -> None:
    base = stamp(spec())
    assert stamp(spec(seed=9, trials=500)) == base  # the plan is no part of the workload
    assert stamp(spec(target="activation")) != base  # other sites
    assert stamp(spec(mitigations=[{"name": "ranger"}])) != base  # a hook on the model


def test_a_later_campaign_of_the_same_content_gets_the_warm_workload() -> None:
    warm._WARM.clear()
    first = ENGINE.prepare(spec())
    plan = ENGINE.plan(spec(), first.meta, 0, [])
    ctx = ENGINE.to_device(first.context, CPU)
    expected = ENGINE.run_shard(ctx, plan)
    (workload,) = ctx.workloads.values()
    assert workload._suffix  # derived state built by the shard

    again = ENGINE.to_device(ENGINE.prepare(spec(seed=3)).context, CPU)
    (same,) = again.workloads.values()
    assert same is workload
    assert [r["outcome"] for r in ENGINE.run_shard(again, plan)] == [
        r["outcome"] for r in expected]

    other = ENGINE.to_device(ENGINE.prepare(spec(target="activation")).context, CPU)
    assert next(iter(other.workloads.values())) is not workload
