"""Input quantization: every query is rounded to ``2^bits`` evenly spaced levels over the data
range (the feature-squeezing bit-depth reduction of Xu, Evans & Qi, NDSS 2018, used as a
watermark-removal preprocessing). Strength = bits per value; lower is stronger."""

from __future__ import annotations

import torch
from torch import nn

from faultlab.spec import StrictModel
from faultlab.workers.watermark.attacks.base import AttackContext, Attacked, register_attack


@register_attack("input_quantization")
def input_quantization(model: nn.Module, strength: float, params: StrictModel, ctx: AttackContext) -> Attacked:
    """Rounds every input to 2^strength levels between the data's min and max."""
    low, high = ctx.data_range
    steps = 2 ** int(strength) - 1

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        unit = ((x - low) / max(high - low, 1e-12)).clamp(0, 1)
        return low + torch.round(unit * steps) / steps * (high - low)

    return Attacked(model, preprocess)
