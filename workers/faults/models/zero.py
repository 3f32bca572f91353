r"""Zero: the element reads as the real value 0 (a dropped word, a cleared register).

Modelled as "zero-value" errors in PyTorchFI (Mahmoud et al., DSN-W 2020) and in the
TensorFI family (Chen et al., "TensorFI", ISSRE-W 2020). For quantized storage the stored
integer becomes the zero point, which is what dequantizes to 0:

.. math:: x' = z \quad (z = 0 \text{ for floating point, the zero point for int8})
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from faultlab.workers.faults.formats import to_signed
from faultlab.workers.faults.models.base import FAULT_MODELS, DrawContext, ElementFormat, FaultModel


@FAULT_MODELS.register(
    "zero", citation="Mahmoud et al., DSN-W 2020: x' = 0 (the zero point z when quantized)"
)
class Zero(FaultModel):
    """Replaces the element by the real value 0 (the stored zero point)."""

    exhaustive = True

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        return {}

    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        return fmt.zero_pattern

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        return torch.full_like(patterns, to_signed(fmt.zero_pattern, fmt.width))
