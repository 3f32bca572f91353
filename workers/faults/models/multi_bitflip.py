r"""Multiple-bit upset: ``bit_count`` distinct, randomly chosen bits of one element flip at once.

Multi-bit upsets grow with technology scaling (Ibe et al., "Impact of Scaling on Neutron-Induced
Soft Error in SRAMs From a 250 nm to a 22 nm Design Rule", IEEE TED 2010); DNN studies model
them as k simultaneous flips in one word (e.g. Mahmoud et al., "PyTorchFI", DSN-W 2020):

.. math:: x' = x \oplus \sum_{b \in B} 2^{b}, \quad B \subset \text{bits},\ |B| = k

with ``B`` drawn uniformly without replacement and ``k = faults.bit_count``; an element has
``C(|bits|, k)`` distinct faults.
"""

from __future__ import annotations

import math
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
    "multi_bitflip", citation="Ibe et al., IEEE TED 2010: x' = x XOR sum_{b in B} 2^b, |B| = k"
)
class MultiBitFlip(FaultModel):
    """Inverts ``bit_count`` distinct random bits of one element."""

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        chosen = rng.choice(np.asarray(ctx.bits), size=ctx.bit_count, replace=False)
        return {"bits": sorted(int(b) for b in chosen)}

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern ^ mask(fault["bits"])

    def choices(self, ctx: DrawContext) -> int:
        return math.comb(len(ctx.bits), ctx.bit_count)

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns ^ signed_mask(fault["bits"], fmt.width)
