r"""Layer-wise magnitude pruning: each layer loses the same fraction of its smallest weights.

Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS
2015; the "uniform" magnitude baseline of Gale et al., "The State of Sparsity in Deep Neural
Networks", 2019. In every chosen layer with weights ``w`` (``n`` of them) the mask is

.. math:: m_i = 0 \iff |w_i| \text{ is among the } \operatorname{round}(s \cdot n)
          \text{ smallest of the layer}, \qquad w' = m \odot w

with ``s = sparsity`` (or the layer's ``per_layer`` fraction).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from faultlab.workers.transforms._common import (
    PerLayerPruningParams,
    bake_masks,
    layerwise_masks,
    per_layer_fractions,
    weight_layers,
)
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(PerLayerPruningParams):
    """Parameters of ``magnitude``."""


@TRANSFORMS.register(
    "magnitude", params=Params,
    citation="Han et al., NeurIPS 2015: drop the round(s·n) smallest |w| of each layer",
)
def magnitude(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """Layer-wise magnitude pruning: in every convolution / linear layer (including the
    ``Linear`` weights inside PyG convolutions) the ``round(sparsity · n)`` weights of smallest
    ``|w|`` are set to zero, exactly the mask of ``torch.nn.utils.prune.l1_unstructured``.
    ``per_layer`` overrides the fraction of named layers (a sensitivity-derived allocation).
    Zeros are baked into the weights in place."""
    chosen = weight_layers(model, params.layers, params.exclude or ())
    fractions = per_layer_fractions(chosen, params.sparsity, params.per_layer)
    masks = layerwise_masks([layer.weight.detach().abs() for layer in chosen], fractions)
    bake_masks(chosen, masks)
    return model
