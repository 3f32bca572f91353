"""Ideal band-stop filtering of every query: removes the ring of radial frequencies
``center ± width/2`` in the 2-D Fourier domain, where mid-frequency watermarks such as
arXiv 2208.03944's are expected to sit. Strength = band width as a fraction of the largest
radial frequency; ``params.center`` places the band."""

from __future__ import annotations

from torch import nn

from faultlab.workers.watermark.attacks.base import AttackContext, Attacked, register_attack
from faultlab.workers.watermark.catalog import BandstopParams
from faultlab.workers.watermark.imaging import filter_frequencies, radial_grid


@register_attack("bandstop")
def bandstop(model: nn.Module, strength: float, params: BandstopParams, ctx: AttackContext) -> Attacked:
    """Zeroes the Fourier components with |radius − center| < strength / 2, per channel."""
    _, height, width = ctx.data.input_shape
    keep = (radial_grid(height, width) - params.center).abs() >= strength / 2
    keep[0, 0] = True  # the image mean is never part of a band
    low, high = ctx.data_range
    return Attacked(model, lambda x: filter_frequencies(x, keep).clamp(low, high))
