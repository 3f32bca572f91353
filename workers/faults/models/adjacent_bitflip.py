r"""Adjacent multiple-bit upset: ``bit_count`` neighbouring bits of one element flip together.

A single particle strike upsets physically adjacent cells (Radaelli et al., "Investigation of
Multi-Bit Upsets in a 150 nm Technology SRAM Device", IEEE TNS 2005); in a row-interleaved word
those are neighbouring bit positions:

.. math:: x' = x \oplus \sum_{b=l}^{l+k-1} 2^{b}, \quad l \sim U\{0, \dots, w-k\}

with ``w`` the element width and ``k = faults.bit_count``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from faultlab.workers.faults.models.base import (
    FAULT_MODELS,
    DrawContext,
    ElementFormat,
    FaultModel,
    mask,
    signed_mask,
)


@FAULT_MODELS.register(
    "adjacent_bitflip", citation="Radaelli et al., IEEE TNS 2005: x' = x XOR sum_{b=l}^{l+k-1} 2^b"
)
class AdjacentBitFlip(FaultModel):
    """Inverts ``bit_count`` neighbouring bits of one element."""

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        low = int(rng.integers(ctx.fmt.width - ctx.bit_count + 1))
        return {"bits": list(range(low, low + ctx.bit_count))}

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern ^ mask(fault["bits"])

    def choices(self, ctx: DrawContext) -> int:
        return ctx.fmt.width - ctx.bit_count + 1

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns ^ signed_mask(fault["bits"], fmt.width)
