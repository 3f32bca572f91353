"""Gaussian weight noise as a removal attack (the "adding noise" attack of Uchida et al., ICMR
2017, and of the Watermark-Robustness-Toolbox): every conv/linear weight tensor gets
N(0, (strength · std(W))²) noise, so the knob is relative to each layer's own scale."""

from __future__ import annotations

import torch
from torch import nn

from faultlab.spec import StrictModel
from faultlab.workers.watermark.attacks.base import (
    AttackContext,
    Attacked,
    register_attack,
    weight_tensors,
)


@register_attack("weight_noise")
def weight_noise(model: nn.Module, strength: float, params: StrictModel, ctx: AttackContext) -> Attacked:
    """Adds seeded Gaussian noise of ``strength`` × each tensor's std to every weight."""
    gen = ctx.generator(13)
    with torch.no_grad():
        for weight in weight_tensors(model):
            noise = torch.randn(weight.shape, generator=gen) * float(weight.std()) * strength
            weight.add_(noise.to(weight.dtype))
    return Attacked(model)
