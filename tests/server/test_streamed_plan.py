"""A streamed round: its first shards get trials while the planning thread is still making
the rest, every trial is handed out once and only after its chunk is in the store, and an
engine's error (or a wrong size) reaches the runner instead of hanging it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from faultlab.errors import FaultlabError
from faultlab.server.caches import PACK_CHUNK
from faultlab.server.plans import FIRST_CHUNK, RoundSource, StreamedPlan
from faultlab.spec import parse_spec
from faultlab.workers.engine import TrialRecord
from faultlab.workers.faults.engine import FaultEngine

SPEC: Any = SimpleNamespace(kind="test")


class Keyer:
    """The one engine method the planning thread calls."""

    @staticmethod
    def keyed(spec: Any, meta: Any, trials: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        return [(f"k{t['i']}", t) for t in trials]


def trials(n: int, gate: threading.Event | None = None, fail_at: int | None = None
           ) -> Iterator[dict[str, Any]]:
    for i in range(n):
        if i == FIRST_CHUNK and gate is not None:
            assert gate.wait(30), "the test never opened the gate"
        if i == fail_at:
            raise RuntimeError("engine bug while planning")
        yield {"i": i}


async def no_cache(todo: list[Any]) -> list[Any]:
    return todo


async def run_round(n: int, plan_trials: Iterator[dict[str, Any]], size: int | None = None,
                    gate: threading.Event | None = None) -> tuple[list[Any], list[str]]:
    plan = StreamedPlan(n if size is None else size)
    stored: list[str] = []

    async def add(pairs: list[Any]) -> None:
        await asyncio.sleep(0)
        stored.extend(k for k, _ in pairs)

    plan.start(Keyer(), SPEC, {}, plan_trials)
    storing = asyncio.ensure_future(plan.store_all(add))
    source = RoundSource(plan, set(), no_cache)
    try:
        assert await source.ready()
        if gate is not None:  # the thread is held after the first chunk: shards already run
            first = await source.take(FIRST_CHUNK)
            assert [k for k, _ in first] == [f"k{i}" for i in range(FIRST_CHUNK)]
            assert set(stored) == {k for k, _ in first}
            gate.set()
        else:
            first = []
        taken = list(first)
        while batch := await source.take(1000):
            assert all(k in stored for k, _ in batch)  # only stored trials reach a shard
            taken += batch
        await storing
    finally:
        plan.stop.set()
        storing.cancel()
    assert plan.complete
    return taken, stored


def test_the_first_shard_runs_while_the_round_is_still_being_planned() -> None:
    gate = threading.Event()
    n = 2 * PACK_CHUNK + 100
    taken, stored = asyncio.run(run_round(n, trials(n, gate), gate=gate))
    assert [k for k, _ in taken] == [f"k{i}" for i in range(n)]
    assert stored == [f"k{i}" for i in range(n)]


def test_an_engine_error_while_planning_fails_the_round() -> None:
    with pytest.raises(RuntimeError, match="engine bug"):
        asyncio.run(run_round(3000, trials(3000, fail_at=500)))


def test_a_round_that_is_not_the_size_the_engine_said_fails() -> None:
    with pytest.raises(FaultlabError, match="planned 300 trials for a round it sized at 400"):
        asyncio.run(run_round(400, trials(300)))


def test_the_fault_engine_sizes_its_rounds_exactly() -> None:
    engine = FaultEngine()
    spec = parse_spec({"kind": "faults", "seed": 1, "model": {"name": "digits_cnn"},
                       "dataset": {"name": "digits", "size": 8},
                       "faults": {"sampling": "adaptive", "stratify": ["layer", "bit"],
                                  "margin": 0.1, "pilot_trials": 4}})
    meta = engine.prepare(spec).meta
    previous: list[TrialRecord] = []
    for round_index in range(3):
        plan = engine.plan(spec, meta, round_index, previous)
        assert engine.round_size(spec, meta, round_index, previous) == len(plan)
        previous += [TrialRecord(f"k{round_index}-{j}", t, {"outcome": "sdc" if j % 3 else
                                                             "masked"}, 1)
                     for j, t in enumerate(plan)]
