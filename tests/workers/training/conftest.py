"""Fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.threads import torch_threads


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    with torch_threads(1):
        yield
