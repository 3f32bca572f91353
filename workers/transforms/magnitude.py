"""Layer-wise magnitude pruning: each layer loses the same fraction of its smallest weights."""

from __future__ import annotations

from typing import Any

from torch import nn

from faultlab.workers.transforms._common import (
    bake_masks,
    check_fraction,
    check_keys,
    check_layer_selection,
    check_per_layer,
    layerwise_masks,
    per_layer_fractions,
    weight_layers,
)
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"sparsity", "layers", "exclude", "per_layer"}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_fraction(params, "sparsity")
    check_layer_selection(params)
    check_per_layer(params)


@register_transform("magnitude", validate=validate)
def magnitude(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    sparsity: float,
    layers: list[str] | None = None,
    exclude: list[str] | None = None,
    per_layer: dict[str, float] | None = None,
) -> nn.Module:
    """Layer-wise magnitude pruning (Han et al., "Learning both Weights and Connections for
    Efficient Neural Networks", NeurIPS 2015; the "uniform" magnitude baseline of Gale et al.,
    "The State of Sparsity in Deep Neural Networks", 2019): in every convolution / linear
    layer (including the ``Linear`` weights inside PyG convolutions) the ``round(sparsity · n)``
    weights of smallest ``|w|`` are set to zero, exactly the mask of
    ``torch.nn.utils.prune.l1_unstructured``. ``per_layer`` overrides the fraction of named
    layers (a sensitivity-derived allocation). Zeros are baked into the weights in place."""
    chosen = weight_layers(model, layers, exclude or ())
    fractions = per_layer_fractions(chosen, sparsity, per_layer)
    masks = layerwise_masks([layer.weight.detach().abs() for layer in chosen], fractions)
    bake_masks(chosen, masks)
    return model
