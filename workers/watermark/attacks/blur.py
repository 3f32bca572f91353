"""Gaussian blur of every query (a smoothing input-preprocessing attack, as in the SoK of
Lukas et al., IEEE S&P 2022). Strength = the kernel's σ in pixels; the kernel radius is ⌈3σ⌉
(at most the image size − 1), with reflect padding.

Implements: x' = G_σ * x, G_σ(d) ∝ exp(-d²/2σ²).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``N×C×H×W`` images on their device (the kernel is built on
    the CPU and moved: the same kernel everywhere)."""
    if sigma <= 0:
        return x
    channels, height, width = x.shape[1:]
    radius = max(1, min(math.ceil(3 * sigma), height - 1, width - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device="cpu")
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(x.device)
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


class BlurParams(AttackParams):
    """Parameters of Gaussian blur (none besides the strength)."""

    strength = Strength(
        tier="input",
        knob="Gaussian blur sigma (pixels)",
        low=0,
        high=20,
        stronger="higher",
        defaults=(0.3, 0.5, 0.8, 1.2, 2.0),
    )


@ATTACKS.register(
    "blur",
    params=BlurParams,
    citation="Lukas et al., IEEE S&P 2022 (input smoothing): x' = G_σ * x, G_σ(d) ∝ exp(-d²/2σ²)",
)
def blur(model: nn.Module, strength: float, params: BlurParams, ctx: AttackContext) -> Attacked:
    """Blurs every input with a Gaussian of σ = strength pixels."""
    return Attacked(model, lambda x: gaussian_blur(x, strength))
