"""Stuck-at-0: one stored bit reads 0 for the whole trial, whatever was written.

The classic permanent-fault model (Eldred, "Test Routines Based on Symbolic Logical
Statements", JACM 1959); used for DNN accelerators by Zhang et al., "Analyzing and Mitigating
the Impact of Permanent Faults on a Systolic Array Based Neural Network Accelerator", VTS 2018.
A stuck bit that already holds 0 is masked by construction.
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


class StuckAt0(SingleBitModel):
    name = "stuck_at_0"

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return pattern & ~mask(fault["bits"]) & ((1 << fmt.width) - 1)

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return patterns & ~signed_mask(fault["bits"], fmt.width)
