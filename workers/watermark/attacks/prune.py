"""Magnitude pruning as a removal attack (Han et al., NeurIPS 2015; used against watermarks by
Adi et al. 2018 and Uchida et al. 2017). Reuses the shared compression transforms:
``global_magnitude`` (one threshold over every conv/linear weight, the default) or
``magnitude`` (the same fraction in every layer). Strength = sparsity in [0, 1)."""

from __future__ import annotations

from torch import nn

from faultlab.workers.transforms import get_transform
from faultlab.workers.watermark.attacks.base import AttackContext, Attacked, register_attack
from faultlab.workers.watermark.catalog import PruneParams


@register_attack("prune")
def prune(model: nn.Module, strength: float, params: PruneParams, ctx: AttackContext) -> Attacked:
    """Zeroes the ``strength`` fraction of smallest-magnitude weights (global or per layer)."""
    name = "global_magnitude" if params.scope == "global" else "magnitude"
    transform = get_transform(name, f"{ctx.field}.params.scope")
    return Attacked(transform.fn(model, ctx.data, seed=ctx.seed, sparsity=float(strength)))
