"""Additive Gaussian noise on every query, clipped to the data range — the input-noising
removal attack of the Watermark-Robustness-Toolbox (Lukas et al., IEEE S&P 2022).
Strength = noise standard deviation in input units.

Implements: x' = clip(x + N(0, σ²)).
"""

from __future__ import annotations

import torch
from torch import nn

from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength


class GaussianNoiseParams(AttackParams):
    """Parameters of Gaussian input noise (none besides the strength)."""

    strength = Strength(
        tier="input",
        knob="noise std (input units)",
        low=0,
        high=10,
        stronger="higher",
        defaults=(0.02, 0.05, 0.1, 0.2, 0.4),
    )


@ATTACKS.register(
    "gaussian_noise",
    params=GaussianNoiseParams,
    citation="Lukas et al., IEEE S&P 2022 (WRT input noising): x' = clip(x + N(0, σ²))",
)
def gaussian_noise(
    model: nn.Module, strength: float, params: GaussianNoiseParams, ctx: AttackContext
) -> Attacked:
    """Adds N(0, strength²) noise to every input (seeded), then clips to the data range."""
    low, high = ctx.data_range
    gen = ctx.generator(11)

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        # Drawn on the CPU (the same noise on every device), then moved to the queries.
        noise = torch.randn(x.shape, generator=gen, device="cpu").to(x.device) * strength
        return (x + noise).clamp(low, high)

    return Attacked(model, preprocess)
