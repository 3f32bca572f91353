r"""Random unstructured pruning: the control every pruning method must beat.

The random baseline of ShrinkBench (Blalock et al., "What is the State of Neural Network
Pruning?", MLSys 2020) and of Gale et al., "The State of Sparsity in Deep Neural Networks",
2019. Each weight gets a score ``u_i ~ U(0, 1)`` (``−1`` when it is already zero) and

.. math:: m_i = 0 \iff u_i \text{ is among the } \operatorname{round}(s \cdot n)
          \text{ smallest}, \qquad w' = m \odot w

with ``n`` a layer's weights (``scope: layer``) or all chosen weights (``scope: global``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from faultlab.workers.transforms._common import (
    PruningParams,
    Scope,
    bake_masks,
    global_masks,
    layerwise_masks,
    weight_layers,
)
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(PruningParams):
    """Parameters of ``random``."""

    scope: Scope = "layer"
    """``layer``: ``round(sparsity · n)`` per layer; ``global``: over all chosen layers."""


@TRANSFORMS.register(
    "random", params=Params,
    citation="Blalock et al., MLSys 2020: drop round(s·n) weights with u ~ U(0, 1) lowest",
)
def random_unstructured(
    model: nn.Module, data: Any, params: Params, *, seed: int = 0
) -> nn.Module:
    """Random unstructured pruning: weights are removed uniformly at random,
    ``round(sparsity · n)`` per layer (``scope: layer``) or ``round(sparsity · N)`` over all
    chosen layers (``scope: global``). Deterministic in ``seed``. Weights that are already zero
    are removed first, so applying it at increasing levels (a gradual schedule) only grows the
    mask."""
    chosen = weight_layers(model, params.layers, params.exclude or ())
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for layer in chosen:
        score = torch.rand(layer.weight.shape, generator=gen)
        scores.append(torch.where(layer.weight.detach() == 0, torch.full_like(score, -1.0), score))
    if params.scope == "global":
        masks = global_masks(scores, params.sparsity)
    else:
        masks = layerwise_masks(scores, [params.sparsity] * len(chosen))
    bake_masks(chosen, masks)
    return model
