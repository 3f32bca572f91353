"""The runner's packed round is exactly the engine's plan, keyed, in plan order, and its
source hands out every trial to compute once, after the DONE and cached ones are dropped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from faultlab.errors import SpecError
from faultlab.server.caches import PACK_CHUNK, PackedPlan
from faultlab.server.plans import RoundSource, pack_plan
from faultlab.spec import parse_spec
from faultlab.workers.faults.engine import FaultEngine

ENGINE = FaultEngine()


def _spec(trials: int, max_trials: int = 100_000) -> Any:
    return parse_spec({"kind": "faults", "seed": 3, "model": {"name": "digits_cnn"},
                       "dataset": {"name": "digits", "size": 8},
                       "execution": {"max_trials": max_trials},
                       "faults": {"sampling": "uniform", "trials": trials}})


@pytest.fixture(scope="module")
def meta() -> dict[str, Any]:
    return ENGINE.prepare(_spec(10)).meta


def test_packed_plan_equals_the_keyed_plan(meta: dict[str, Any]) -> None:
    spec = _spec(PACK_CHUNK + 300)
    expected = ENGINE.keyed(spec, meta, ENGINE.plan(spec, meta, 0, []))
    assert list(ENGINE.iter_plan(spec, meta, 0, [])) == [t for _, t in expected]
    packed = pack_plan(ENGINE, spec, meta, 0, [], spec.execution.max_trials)
    assert [p for chunk in packed.chunks() for p in chunk] == expected
    assert len(pack_plan(ENGINE, spec, meta, 1, [], spec.execution.max_trials)) == 0


def test_a_round_over_the_trial_limit_is_refused_before_it_is_made(meta: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="max_trials"):
        list(ENGINE.iter_plan(_spec(200, max_trials=100), meta, 0, []))


def test_round_source_skips_done_and_cached_trials_and_yields_the_rest_once() -> None:
    pairs = [(f"k{i}", {"i": i}) for i in range(2 * PACK_CHUNK + 10)]
    plan = PackedPlan()
    for start in range(0, len(pairs), PACK_CHUNK):
        plan.add(pairs[start:start + PACK_CHUNK])
    done = {"k1", f"k{PACK_CHUNK + 1}"}
    cached = {"k2", f"k{2 * PACK_CHUNK + 3}"}
    seen_by_cache: list[str] = []

    async def from_cache(todo: list[tuple[str, dict[str, Any]]]) -> list[Any]:
        seen_by_cache.extend(k for k, _ in todo)
        return [(k, t) for k, t in todo if k not in cached]

    async def drain() -> list[Any]:
        source = RoundSource(plan, done, from_cache)
        assert await source.ready()
        assert source.remaining() == len(pairs) - 2  # chunk 1 unpacked: exact there
        taken: list[Any] = []
        while batch := await source.take(1000):
            taken += batch
        assert source.remaining() == 0
        return taken

    taken = asyncio.run(drain())
    assert taken == [p for p in pairs if p[0] not in done | cached]
    assert seen_by_cache == [k for k, _ in pairs if k not in done]
