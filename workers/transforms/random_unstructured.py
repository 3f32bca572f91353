"""Random unstructured pruning: the control every pruning method must beat."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from faultlab.workers.transforms._common import (
    bake_masks,
    check_choice,
    check_fraction,
    check_keys,
    check_layer_selection,
    global_masks,
    layerwise_masks,
    weight_layers,
)
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"sparsity", "scope", "layers", "exclude"}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_fraction(params, "sparsity")
    check_choice(params, "scope", ["layer", "global"])
    check_layer_selection(params)


@register_transform("random", validate=validate)
def random_unstructured(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    sparsity: float,
    scope: str = "layer",
    layers: list[str] | None = None,
    exclude: list[str] | None = None,
) -> nn.Module:
    """Random unstructured pruning, the baseline of ShrinkBench (Blalock et al., MLSys 2020)
    and of Gale et al. (2019): weights are removed uniformly at random, ``round(sparsity · n)``
    per layer (``scope: layer``) or ``round(sparsity · N)`` over all chosen layers
    (``scope: global``). Deterministic in ``seed``. Weights that are already zero are removed
    first, so applying it at increasing levels (a gradual schedule) only grows the mask."""
    chosen = weight_layers(model, layers, exclude or ())
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for layer in chosen:
        score = torch.rand(layer.weight.shape, generator=gen)
        scores.append(torch.where(layer.weight.detach() == 0, torch.full_like(score, -1.0), score))
    if scope == "global":
        masks = global_masks(scores, sparsity)
    else:
        masks = layerwise_masks(scores, [sparsity] * len(chosen))
    bake_masks(chosen, masks)
    return model
