r"""Stuck-at-1: one stored bit reads 1 for the whole trial, whatever was written.

The classic permanent-fault model (Eldred, JACM 1959); for DNN accelerators see Zhang et al.,
VTS 2018. A stuck bit that already holds 1 is masked by construction:

.. math:: x' = x \vee 2^{b}
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


@FAULT_MODELS.register("stuck_at_1", citation="Eldred, JACM 1959: x' = x OR 2^b")
class StuckAt1(SingleBitModel):
    """Forces one bit to 1: ``x OR 2^b``."""

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern | mask(fault["bits"])

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns | signed_mask(fault["bits"], fmt.width)
