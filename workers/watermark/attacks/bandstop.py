"""Ideal band-stop filtering of every query: removes the ring of radial frequencies
``center ± width/2`` in the 2-D Fourier domain, where mid-frequency watermarks such as
arXiv 2208.03944's are expected to sit. Strength = band width as a fraction of the largest
radial frequency; ``params.center`` places the band.

Implements: x' = F⁻¹(F(x)·[|r(u,v) − c| ≥ s/2]).
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength
from faultlab.workers.watermark.imaging import filter_frequencies, radial_grid


class BandstopParams(AttackParams):
    """Parameters of band-stop filtering."""

    strength = Strength(
        tier="input",
        knob="removed band width (fraction of max radius)",
        low=0,
        high=1,
        stronger="higher",
        defaults=(0.05, 0.1, 0.2, 0.3, 0.5),
    )

    center: float = Field(0.35, ge=0.0, le=1.0)
    """Centre of the removed band as a fraction of the largest radial frequency."""


@ATTACKS.register(
    "bandstop",
    params=BandstopParams,
    citation="ideal band-stop against arXiv 2208.03944: x' = F⁻¹(F(x)·[|r(u,v) − c| ≥ s/2])",
)
def bandstop(
    model: nn.Module, strength: float, params: BandstopParams, ctx: AttackContext
) -> Attacked:
    """Zeroes the Fourier components with |radius − center| < strength / 2, per channel."""
    _, height, width = ctx.data.input_shape
    keep = (radial_grid(height, width) - params.center).abs() >= strength / 2
    keep[0, 0] = True  # the image mean is never part of a band
    keep = keep.to(ctx.device)  # built on the CPU: the same mask on every device
    low, high = ctx.data_range
    return Attacked(model, lambda x: filter_frequencies(x, keep).clamp(low, high))
