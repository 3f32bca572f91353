"""Magnitude pruning as a removal attack (Han et al., NeurIPS 2015; used against watermarks by
Adi et al. 2018 and Uchida et al. 2017). Reuses the shared compression transforms:
``global_magnitude`` (one threshold over every conv/linear weight, the default) or
``magnitude`` (the same fraction in every layer). Strength = sparsity in [0, 1).

Implements: w' = w·[|w| > τ_s], τ_s the s-quantile of |w|.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from faultlab.workers.transforms import run_transform
from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength


class PruneParams(AttackParams):
    """Parameters of magnitude pruning."""

    strength = Strength(
        tier="weights",
        knob="sparsity",
        low=0,
        high=0.999,
        stronger="higher",
        defaults=(0.2, 0.4, 0.6, 0.8, 0.9),
    )

    scope: Literal["global", "layer"] = "global"
    """Magnitude threshold over all conv/linear weights at once, or per layer."""


@ATTACKS.register(
    "prune",
    params=PruneParams,
    citation="Han et al., NeurIPS 2015: w' = w·[|w| > τ_s], τ_s the s-quantile of |w|",
)
def prune(model: nn.Module, strength: float, params: PruneParams, ctx: AttackContext) -> Attacked:
    """Zeroes the ``strength`` fraction of smallest-magnitude weights (global or per layer)."""
    name = "global_magnitude" if params.scope == "global" else "magnitude"
    sparsity = {"sparsity": float(strength)}
    return Attacked(run_transform(name, model, ctx.data, sparsity, seed=ctx.seed, field=ctx.field))
