"""Shared fixtures of the watermark method tests: the digits data, a quickly trained model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch

from faultlab.spec import DatasetSpec
from faultlab.workers.watermark.runs import fresh_builder
from faultlab.workers.zoo import ImageData, load_dataset, trained_model
from tests.threads import torch_threads
from tests.workers.watermark import FAST


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread than on two contended ones."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def digits() -> ImageData:
    data = load_dataset(DatasetSpec.model_validate({"name": "digits"}))
    assert isinstance(data, ImageData)
    return data


@pytest.fixture(scope="module")
def model(digits: ImageData) -> torch.nn.Module:
    return trained_model(FAST, digits, seed=0)[0]


@pytest.fixture(scope="module")
def fresh(digits: ImageData) -> Callable[[int], torch.nn.Module]:
    """Untrained models of the test architecture with a chosen output count."""
    return fresh_builder(FAST, digits, 0)
