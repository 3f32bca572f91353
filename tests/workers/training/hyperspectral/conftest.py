"""One intra-op thread for these tests: the networks are tiny, and on a shared machine more
threads only contend (training is deterministic at a fixed thread count)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.threads import torch_threads


@pytest.fixture(autouse=True, scope="package")
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield
