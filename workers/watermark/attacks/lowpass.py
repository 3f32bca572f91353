"""Ideal low-pass filtering of every query in the 2-D Fourier domain (removes the frequencies
a frequency-domain watermark may live in; cf. Xu et al., CVPR 2020, on dropping
high-frequency components). Strength = the kept radial frequency as a fraction of the largest
one (the corner of the spectrum); lower is stronger."""

from __future__ import annotations

from torch import nn

from faultlab.spec import StrictModel
from faultlab.workers.watermark.attacks.base import AttackContext, Attacked, register_attack
from faultlab.workers.watermark.imaging import filter_frequencies, radial_grid


@register_attack("lowpass")
def lowpass(model: nn.Module, strength: float, params: StrictModel, ctx: AttackContext) -> Attacked:
    """Keeps the Fourier components with radial frequency ≤ strength, per channel."""
    _, height, width = ctx.data.input_shape
    keep = radial_grid(height, width) <= strength + 1e-9
    low, high = ctx.data_range
    return Attacked(model, lambda x: filter_frequencies(x, keep).clamp(low, high))
