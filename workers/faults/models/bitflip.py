"""Single transient bit flip: one stored bit of one element is inverted.

The standard soft-error model of DNN resilience studies (Li et al., "Understanding Error
Propagation in Deep Learning Neural Network (DNN) Accelerators and Applications", SC 2017;
Reagen et al., "Ares", DAC 2018). Flipped on the true IEEE-754 / bfloat16 / integer layout.
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


class BitFlip(FaultModel):
    name = "bitflip"
    per_bit = True

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        if bit is None:
            bit = int(ctx.bits[int(rng.integers(len(ctx.bits)))])
        return {"bits": [int(bit)]}

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern ^ mask(fault["bits"])

    def choices(self, ctx: DrawContext) -> int:
        return len(ctx.bits)

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns ^ signed_mask(fault["bits"], fmt.width)
