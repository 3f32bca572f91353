"""Store fixtures: every contract test runs once on SQLite and once on a real Redis server.

``store_url`` (a fresh SQLite file, or a Redis URL with a unique key prefix whose keys are
deleted afterwards) comes from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from faultlab.server.store import Store, open_store


@pytest.fixture
def open_backend(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens another store on the same data, as a restarted coordinator would."""
    opened: list[Store] = []

    def factory() -> Store:
        opened.append(open_store(store_url))
        return opened[-1]

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_backend: Callable[[], Store]) -> Store:
    return open_backend()
