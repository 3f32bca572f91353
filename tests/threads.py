"""torch's intra-op threads for a block of tests: the small models of these tests run faster
on one thread than on two contended ones, and tests that compare records bit for bit run with
the same thread count throughout."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` for the block, restored after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
