"""Zero: the element reads as the real value 0 (a dropped word, a cleared register).

Modelled as "zero-value" errors in PyTorchFI (Mahmoud et al., DSN-W 2020) and in the
TensorFI family (Chen et al., "TensorFI", ISSRE-W 2020). For quantized storage the stored
integer becomes the zero point, which is what dequantizes to 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from faultlab.workers.faults.formats import to_signed
from faultlab.workers.faults.models.base import DrawContext, ElementFormat, FaultModel


class Zero(FaultModel):
    name = "zero"

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        return {}

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return fmt.zero_pattern

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return torch.full_like(patterns, to_signed(fmt.zero_pattern, fmt.width))
