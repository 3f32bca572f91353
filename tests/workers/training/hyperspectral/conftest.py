"""One intra-op thread for these tests: the networks are tiny, and on a shared machine more
threads only contend (training is deterministic at a fixed thread count)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
