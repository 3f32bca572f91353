"""Additive Gaussian noise on every query, clipped to the data range — the input-noising
removal attack of the Watermark-Robustness-Toolbox (Lukas et al., IEEE S&P 2022).
Strength = noise standard deviation in input units."""

from __future__ import annotations

import torch
from torch import nn

from faultlab.spec import StrictModel
from faultlab.workers.watermark.attacks.base import AttackContext, Attacked, register_attack


@register_attack("gaussian_noise")
def gaussian_noise(model: nn.Module, strength: float, params: StrictModel, ctx: AttackContext) -> Attacked:
    """Adds N(0, strength²) noise to every input (seeded), then clips to the data range."""
    low, high = ctx.data_range
    gen = ctx.generator(11)

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=gen) * strength
        return (x + noise).clamp(low, high)

    return Attacked(model, preprocess)
