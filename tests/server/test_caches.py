"""Every in-memory cache of the coordinator is bounded."""

from __future__ import annotations

import pytest

from faultlab.server.caches import PACK_CHUNK, LruCache, PackedPlan
from faultlab.server.config import CoordinatorConfig
from faultlab.server.coordinator import Coordinator
from faultlab.server.store import open_store


def test_lru_cache_keeps_at_most_its_bound_and_drops_the_least_recently_used() -> None:
    cache: LruCache[str, int] = LruCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # "a" is now the most recently used
    cache.put("d", 3)
    assert len(cache) == 3
    assert "b" not in cache and cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == [0, 2, 3]
    cache.put("c", 20)  # replacing keeps the size
    assert len(cache) == 3 and cache.get("c") == 20
    for i in range(1000):
        cache.put(f"k{i}", i)
    assert len(cache) == 3
    with pytest.raises(ValueError):
        LruCache(0)


def test_coordinator_caches_are_bounded_by_its_config() -> None:
    store = open_store("sqlite://:memory:")
    try:
        co = Coordinator(store, CoordinatorConfig(cache_entries=5, plan_cache_entries=2))
        assert co.caches.meta.max_entries == 5
        assert co.caches.first_plans.max_entries == 2
        assert co.lifecycle.reports.max_entries == 5
    finally:
        store.close()


def test_weighted_lru_cache_bounds_its_total_weight_and_skips_a_too_heavy_value() -> None:
    cache: LruCache[str, bytes] = LruCache(10, max_weight=10, weigh=len)
    cache.put("a", b"xxxx")
    cache.put("b", b"xxxx")
    assert cache.weight == 8 and len(cache) == 2
    cache.put("c", b"xxxx")  # 12 > 10: the least recently used ("a") goes
    assert "a" not in cache and cache.weight == 8
    cache.put("b", b"x")  # replacing re-weighs
    assert cache.weight == 5 and cache.get("b") == b"x"
    cache.put("huge", b"x" * 11)  # heavier than the whole bound: not kept, nothing dropped
    assert "huge" not in cache and len(cache) == 2 and cache.weight == 5
    with pytest.raises(ValueError):
        LruCache(3, max_weight=10)


def test_packed_plan_gives_back_every_pair_in_order_as_fresh_objects() -> None:
    pairs = [(f"k{i}", {"i": i, "bits": (i % 3,), "x": i / 7}) for i in range(5000)]
    plan = PackedPlan()
    for start in range(0, len(pairs), PACK_CHUNK):
        plan.add(pairs[start:start + PACK_CHUNK])
    plan.add([])
    unpacked = [pair for chunk in plan.chunks() for pair in chunk]
    assert len(plan) == 5000 and unpacked == pairs  # tuples stay tuples (pickle, not JSON)
    assert unpacked[0][1] is not pairs[0][1]
    assert [len(c) for c in plan.chunks()] == [PACK_CHUNK, PACK_CHUNK, 5000 - 2 * PACK_CHUNK]
    assert 0 < plan.nbytes < 60 * len(pairs)  # packed: far below the dicts' ~1 kB a pair
