r"""Single transient bit flip: one stored bit of one element is inverted.

The standard soft-error model of DNN resilience studies (Li et al., "Understanding Error
Propagation in Deep Learning Neural Network (DNN) Accelerators and Applications", SC 2017;
Reagen et al., "Ares", DAC 2018). Flipped on the true IEEE-754 / bfloat16 / integer layout:

.. math:: x' = x \oplus 2^{b}

with ``x`` the stored bit pattern and ``b`` the stratum's bit (or one drawn uniformly from
``faults.bits``).
"""

from __future__ import annotations

from typing import Any

import torch

from faultlab.workers.faults.models.base import (
    FAULT_MODELS,
    ElementFormat,
    SingleBitModel,
    mask,
    signed_mask,
)


@FAULT_MODELS.register("bitflip", citation="Li et al., SC 2017: x' = x XOR 2^b")
class BitFlip(SingleBitModel):
    """Inverts one bit: ``x XOR 2^b``."""

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern ^ mask(fault["bits"])

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns ^ signed_mask(fault["bits"], fmt.width)
