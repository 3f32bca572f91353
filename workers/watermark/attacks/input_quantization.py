"""Input quantization: every query is rounded to ``2^bits`` evenly spaced levels over the data
range (the feature-squeezing bit-depth reduction of Xu, Evans & Qi, NDSS 2018, used as a
watermark-removal preprocessing). Strength = bits per value; lower is stronger.

Implements: x' = round(x·(2^b−1))/(2^b−1).
"""

from __future__ import annotations

import torch
from torch import nn

from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength


class InputQuantizationParams(AttackParams):
    """Parameters of input quantization (none besides the strength)."""

    strength = Strength(
        tier="input",
        knob="bits per input value",
        low=1,
        high=16,
        stronger="lower",
        defaults=(8, 6, 4, 3, 2),
        integer=True,
    )


@ATTACKS.register(
    "input_quantization",
    params=InputQuantizationParams,
    citation="Xu, Evans & Qi, NDSS 2018 (feature squeezing): x' = round(x·(2^b−1))/(2^b−1)",
)
def input_quantization(
    model: nn.Module, strength: float, params: InputQuantizationParams, ctx: AttackContext
) -> Attacked:
    """Rounds every input to 2^strength levels between the data's min and max."""
    low, high = ctx.data_range
    steps = 2 ** int(strength) - 1

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        unit = ((x - low) / max(high - low, 1e-12)).clamp(0, 1)
        return low + torch.round(unit * steps) / steps * (high - low)

    return Attacked(model, preprocess)
