r"""Random value: the element is replaced by a value drawn uniformly from the target's range.

PyTorchFI's ``random_value`` error model (Mahmoud et al., "PyTorchFI: A Runtime Perturbation
Tool for DNNs", DSN-W 2020) draws in a fixed interval; faultlab draws inside the target tensor's
own fault-free range (or, for integer storage, uniformly over the stored integers), and writes
the drawn value into the trial record so a replay is exact:

.. math:: x' \sim U(\min X, \max X) \ \text{(floating point)}, \qquad
          x' \sim U\{0, \dots, 2^{w}-1\} \ \text{(stored integers)}

with ``X`` the fault-free values of the target tensor and ``w`` the element width.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from faultlab.workers.faults.formats import float_to_bits, to_signed
from faultlab.workers.faults.models.base import FAULT_MODELS, DrawContext, ElementFormat, FaultModel


@FAULT_MODELS.register("random_value", citation="Mahmoud et al., DSN-W 2020: x' ~ U(min X, max X)")
class RandomValue(FaultModel):
    """Replaces the element by a value drawn uniformly inside the target's range."""

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        if not ctx.fmt.floating:
            return {"pattern": int(rng.integers(0, 1 << min(ctx.fmt.width, 62)))}
        low, high = ctx.value_range
        return {"value": float(rng.uniform(low, high)) if high > low else float(low)}

    def choices(self, ctx: DrawContext) -> float:
        """Every stored integer (``2^w``); a floating-point value is continuous."""
        return math.inf if ctx.fmt.floating else float(1 << min(ctx.fmt.width, 62))

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        if "pattern" in fault:
            return int(fault["pattern"]) & ((1 << fmt.width) - 1)
        return float_to_bits(float(fault["value"]), getattr(torch, fmt.torch_dtype))

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return torch.full_like(patterns, to_signed(self.apply(0, fault, fmt), fmt.width))
