"""Single transient bit flip: one stored bit of one element is inverted.

The standard soft-error model of DNN resilience studies (Li et al., "Understanding Error
Propagation in Deep Learning Neural Network (DNN) Accelerators and Applications", SC 2017;
Reagen et al., "Ares", DAC 2018). Flipped on the true IEEE-754 / bfloat16 / integer layout.
"""

from __future__ import annotations

from typing import Any

import torch

from faultlab.workers.faults.models.base import (
    ElementFormat,
    SingleBitModel,
    mask,
    signed_mask,
)


class BitFlip(SingleBitModel):
    name = "bitflip"

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern ^ mask(fault["bits"])

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns ^ signed_mask(fault["bits"], fmt.width)
