"""Ideal low-pass filtering of every query in the 2-D Fourier domain (removes the frequencies
a frequency-domain watermark may live in; cf. Xu et al., CVPR 2020, on dropping
high-frequency components). Strength = the kept radial frequency as a fraction of the largest
one (the corner of the spectrum); lower is stronger.

Implements: x' = F⁻¹(F(x)·[r(u,v) ≤ s]).
"""

from __future__ import annotations

from torch import nn

from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength
from faultlab.workers.watermark.imaging import filter_frequencies, radial_grid


class LowpassParams(AttackParams):
    """Parameters of low-pass filtering (none besides the strength)."""

    strength = Strength(
        tier="input",
        knob="kept radial frequency fraction",
        low=0,
        high=1,
        stronger="lower",
        defaults=(0.9, 0.7, 0.5, 0.3, 0.15),
    )


@ATTACKS.register(
    "lowpass",
    params=LowpassParams,
    citation="Xu et al., CVPR 2020 (frequency-domain filtering): x' = F⁻¹(F(x)·[r(u,v) ≤ s])",
)
def lowpass(
    model: nn.Module, strength: float, params: LowpassParams, ctx: AttackContext
) -> Attacked:
    """Keeps the Fourier components with radial frequency ≤ strength, per channel."""
    _, height, width = ctx.data.input_shape
    keep = (radial_grid(height, width) <= strength + 1e-9).to(ctx.device)  # built on the CPU
    low, high = ctx.data_range
    return Attacked(model, lambda x: filter_frequencies(x, keep).clamp(low, high))
