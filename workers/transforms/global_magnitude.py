r"""Global magnitude pruning: the smallest weights of the whole network, pooled across layers.

Han et al., "Learning both Weights and Connections for Efficient Neural Networks", NeurIPS
2015; the baseline ShrinkBench (Blalock et al., "What is the State of Neural Network
Pruning?", MLSys 2020) says every study must include. Over all ``N`` weights of the chosen
layers:

.. math:: m_i = 0 \iff |w_i| \text{ is among the } \operatorname{round}(s \cdot N)
          \text{ smallest}, \qquad w' = m \odot w
"""

from __future__ import annotations

from typing import Any

from torch import nn

from faultlab.workers.transforms._common import (
    PruningParams,
    bake_masks,
    global_masks,
    weight_layers,
)
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(PruningParams):
    """Parameters of ``global_magnitude``."""


@TRANSFORMS.register(
    "global_magnitude", params=Params,
    citation="Han et al., NeurIPS 2015: drop the round(s·N) smallest |w| of all layers pooled",
)
def global_magnitude(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """Global magnitude pruning: the ``round(sparsity · N)`` weights of smallest ``|w|``
    among all ``N`` weights of the chosen layers are zeroed, so layers end up with different
    sparsities. Identical to ``torch.nn.utils.prune.global_unstructured`` with
    ``L1Unstructured`` over the same layers in module order. Zeros are baked into the
    weights in place."""
    chosen = weight_layers(model, params.layers, params.exclude or ())
    masks = global_masks([layer.weight.detach().abs() for layer in chosen], params.sparsity)
    bake_masks(chosen, masks)
    return model
