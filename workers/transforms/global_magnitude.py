"""Global magnitude pruning: the smallest weights of the whole network, pooled across layers."""

from __future__ import annotations

from typing import Any

from torch import nn

from faultlab.workers.transforms._common import (
    bake_masks,
    check_fraction,
    check_keys,
    check_layer_selection,
    global_masks,
    weight_layers,
)
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"sparsity", "layers", "exclude"}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_fraction(params, "sparsity")
    check_layer_selection(params)


@register_transform("global_magnitude", validate=validate)
def global_magnitude(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    sparsity: float,
    layers: list[str] | None = None,
    exclude: list[str] | None = None,
) -> nn.Module:
    """Global magnitude pruning (Han et al., NeurIPS 2015; the baseline ShrinkBench — Blalock
    et al., "What is the State of Neural Network Pruning?", MLSys 2020 — says every study
    must include): the ``round(sparsity · N)`` weights of smallest ``|w|`` among all ``N``
    weights of the chosen layers are zeroed, so layers end up with different sparsities.
    Identical to ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured`` over the
    same layers in module order. Zeros are baked into the weights in place."""
    chosen = weight_layers(model, layers, exclude or ())
    masks = global_masks([layer.weight.detach().abs() for layer in chosen], sparsity)
    bake_masks(chosen, masks)
    return model
