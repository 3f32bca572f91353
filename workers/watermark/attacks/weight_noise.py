"""Gaussian weight noise as a removal attack (the "adding noise" attack of Uchida et al., ICMR
2017, and of the Watermark-Robustness-Toolbox): every conv/linear weight tensor gets
N(0, (strength · std(W))²) noise, so the knob is relative to each layer's own scale.

Implements: W' = W + N(0, (s·std(W))²).
"""

from __future__ import annotations

import torch
from torch import nn

from faultlab.workers.watermark.attacks.base import (
    ATTACKS,
    AttackContext,
    Attacked,
    weight_tensors,
)
from faultlab.workers.watermark.catalog import AttackParams, Strength


class WeightNoiseParams(AttackParams):
    """Parameters of Gaussian weight noise (none besides the strength)."""

    strength = Strength(
        tier="weights",
        knob="noise std relative to each tensor's std",
        low=0,
        high=10,
        stronger="higher",
        defaults=(0.05, 0.1, 0.2, 0.4, 0.8),
    )


@ATTACKS.register(
    "weight_noise",
    params=WeightNoiseParams,
    citation="Uchida et al., ICMR 2017: W' = W + N(0, (s·std(W))²)",
)
def weight_noise(
    model: nn.Module, strength: float, params: WeightNoiseParams, ctx: AttackContext
) -> Attacked:
    """Adds seeded Gaussian noise of ``strength`` × each tensor's std to every weight."""
    gen = ctx.generator(13)
    with torch.no_grad():
        for weight in weight_tensors(model):
            noise = torch.randn(weight.shape, generator=gen, device="cpu")
            noise = noise * float(weight.std()) * strength  # as on the CPU, on every device
            weight.add_(noise.to(weight.device, weight.dtype))
    return Attacked(model)
