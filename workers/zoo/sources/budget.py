"""The allocation budget of building a model from a spec's options.

Options are bounded one by one (e.g. ``hidden_channels ≤ 4096``), but their product can still
ask for a model far beyond what a worker should allocate. :func:`bounded_build` first builds the
model on PyTorch's ``meta`` device (shapes only, no storage), counts its parameters and buffers,
and refuses more than :data:`MAX_MODEL_ELEMENTS` before any real memory is allocated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from faultlab.errors import SpecError

MAX_MODEL_ELEMENTS = 100_000_000
"""Parameters plus buffers of a model built from options (400 MB in float32)."""


def bounded_build(build: Callable[[], nn.Module], field: str) -> nn.Module:
    """``build()`` on the meta device to size it, then for real if within the budget."""
    with torch.device("meta"):
        probe = build()
    elements = sum(t.numel() for t in [*probe.parameters(), *probe.buffers()])
    if elements > MAX_MODEL_ELEMENTS:
        raise SpecError(
            field, f"asks for a model of {elements:,} parameters (at most {MAX_MODEL_ELEMENTS:,})"
        )
    return build()
