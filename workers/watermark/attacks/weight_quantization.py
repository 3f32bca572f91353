"""Post-training weight quantization as a removal attack: symmetric uniform quantization of
every conv/linear weight to ``bits`` bits with round-to-nearest (Jacob et al., CVPR 2018,
without the integer kernels: weights are stored back dequantized). One scale per tensor or per
output channel; ``bits = 1`` keeps the levels {−s, 0, s}. Strength = bits; lower is stronger."""

from __future__ import annotations

import torch
from torch import nn

from faultlab.workers.watermark.attacks.base import (
    AttackContext,
    Attacked,
    register_attack,
    weight_tensors,
)
from faultlab.workers.watermark.catalog import WeightQuantizationParams


def fake_quantize(weight: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """``weight`` rounded to ``2^(bits-1) - 1`` levels each side of zero (at least one)."""
    levels = max(1, 2 ** (bits - 1) - 1)
    if per_channel and weight.dim() > 1:
        peak = weight.abs().flatten(1).max(1).values.view(-1, *([1] * (weight.dim() - 1)))
    else:
        peak = weight.abs().max()
    scale = (peak / levels).clamp_min(1e-12)
    return torch.round(weight / scale).clamp(-levels, levels) * scale


@register_attack("weight_quantization")
def weight_quantization(
    model: nn.Module, strength: float, params: WeightQuantizationParams, ctx: AttackContext
) -> Attacked:
    """Quantizes every conv/linear weight to ``strength`` bits."""
    with torch.no_grad():
        for weight in weight_tensors(model):
            weight.copy_(fake_quantize(weight, int(strength), params.granularity == "channel"))
    return Attacked(model)
