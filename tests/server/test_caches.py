"""Every in-memory cache of the coordinator is bounded."""

from __future__ import annotations

import pytest

from faultlab.server.caches import LruCache
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
