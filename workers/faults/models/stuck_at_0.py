r"""Stuck-at-0: one stored bit reads 0 for the whole trial, whatever was written.

The classic permanent-fault model (Eldred, "Test Routines Based on Symbolic Logical
Statements", JACM 1959); used for DNN accelerators by Zhang et al., "Analyzing and Mitigating
the Impact of Permanent Faults on a Systolic Array Based Neural Network Accelerator", VTS 2018.
A stuck bit that already holds 0 is masked by construction:

.. math:: x' = x \wedge \lnot 2^{b}
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


@FAULT_MODELS.register("stuck_at_0", citation="Eldred, JACM 1959: x' = x AND NOT 2^b")
class StuckAt0(SingleBitModel):
    """Forces one bit to 0: ``x AND NOT 2^b``."""

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern & ~mask(fault["bits"]) & ((1 << fmt.width) - 1)

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns & ~signed_mask(fault["bits"], fmt.width)
