"""Stuck-at-0: one stored bit reads 0 for the whole trial, whatever was written.

The classic permanent-fault model (Eldred, "Test Routines Based on Symbolic Logical
Statements", JACM 1959); used for DNN accelerators by Zhang et al., "Analyzing and Mitigating
the Impact of Permanent Faults on a Systolic Array Based Neural Network Accelerator", VTS 2018.
A stuck bit that already holds 0 is masked by construction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from faultlab.workers.faults.models.base import (
    DrawContext,
    ElementFormat,
    FaultModel,
    mask,
    signed_mask,
)


class StuckAt0(FaultModel):
    name = "stuck_at_0"
    per_bit = True

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        if bit is None:
            bit = int(ctx.bits[int(rng.integers(len(ctx.bits)))])
        return {"bits": [int(bit)]}

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern & ~mask(fault["bits"]) & ((1 << fmt.width) - 1)

    def choices(self, ctx: DrawContext) -> int:
        return len(ctx.bits)

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns & ~signed_mask(fault["bits"], fmt.width)
