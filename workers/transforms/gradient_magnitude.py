r"""Gradient-magnitude (first-order Taylor) pruning: scores ``|w · ∂L/∂w|`` on calibration data.

The saliency of Molchanov et al., "Pruning Convolutional Neural Networks for Resource
Efficient Inference", ICLR 2017, applied per weight, and the connection sensitivity of Lee et
al., "SNIP", ICLR 2019 (ShrinkBench's ``GlobalMagGrad`` / ``LayerMagGrad``):

.. math:: S_i = \left| w_i \cdot \frac{\partial \mathcal{L}}{\partial w_i} \right|,
          \qquad m_i = 0 \iff S_i \text{ is among the } \operatorname{round}(s \cdot n)
          \text{ smallest}

with ``L`` the mean cross-entropy on a seeded calibration sample.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from faultlab.workers.transforms._common import (
    PruningParams,
    Scope,
    bake_masks,
    calibration_batch,
    global_masks,
    layerwise_masks,
    weight_layers,
)
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(PruningParams):
    """Parameters of ``gradient_magnitude``."""

    scope: Scope = "layer"
    """``layer``: ``round(sparsity · n)`` per layer; ``global``: over all chosen layers."""
    samples: int = Field(256, ge=1, le=1_000_000)
    """Calibration inputs (graphs: training nodes) the loss is averaged over."""
    batch_size: int = Field(256, ge=1, le=65_536)
    """Calibration inputs per backward pass (image models)."""


def gradient_scores(
    model: nn.Module, data: Any, weights: list[torch.Tensor], *, samples: int, batch_size: int,
    seed: int,
) -> list[torch.Tensor]:
    """``|w ⊙ ∇_w L|`` for each tensor in ``weights``, ``L`` the mean cross-entropy of the
    model (in eval mode) on a seeded calibration sample of ``samples`` training inputs."""
    inputs, labels, nodes = calibration_batch(data, samples, seed)
    was_training = model.training
    model.eval()
    flags = [w.requires_grad for w in weights]
    grads = [torch.zeros_like(w) for w in weights]
    try:
        for w in weights:
            w.requires_grad_(True)
        batches: list[tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor | None]]
        if nodes is not None:
            batches = [(inputs, labels, nodes)]
        else:
            x = inputs[0]
            batches = [
                ((x[i : i + batch_size],), labels[i : i + batch_size], None)
                for i in range(0, len(x), batch_size)
            ]
        for batch_inputs, batch_labels, batch_nodes in batches:
            out = model(*batch_inputs)
            if batch_nodes is not None:
                out = out[batch_nodes]
            # Sum over batches of per-batch means, weighted so the total is the sample mean.
            loss = F.cross_entropy(out, batch_labels, reduction="sum") / len(labels)
            dws = torch.autograd.grad(loss, weights, allow_unused=True)
            for g, dw in zip(grads, dws, strict=True):
                if dw is not None:
                    g.add_(dw)
    finally:
        for w, flag in zip(weights, flags, strict=True):
            w.requires_grad_(flag)
        model.train(was_training)
    # Weights already zero (an earlier pruning step) rank strictly first: a live weight with a
    # zero gradient also scores 0 and must not take their place in a gradual schedule.
    return [
        torch.where(w.detach() == 0, torch.full_like(g, -1.0), (w.detach() * g).abs())
        for w, g in zip(weights, grads, strict=True)
    ]


@TRANSFORMS.register(
    "gradient_magnitude", params=Params,
    citation="Molchanov et al., ICLR 2017: drop the round(s·n) smallest S = |w · ∂L/∂w|",
)
def gradient_magnitude(
    model: nn.Module, data: Any, params: Params, *, seed: int = 0
) -> nn.Module:
    """Gradient-magnitude pruning with the first-order Taylor score ``|w · ∂L/∂w|``. ``L`` is
    the mean cross-entropy on ``samples`` training inputs drawn with ``seed`` (for a graph: the
    whole graph forward, loss on ``samples`` training nodes). The weights with the
    ``round(sparsity · n)`` smallest scores are zeroed per layer (``scope: layer``) or across
    layers (``scope: global``), baked in place; weights already zero go first, so increasing
    levels (a gradual schedule) only grow the mask."""
    chosen = weight_layers(model, params.layers, params.exclude or ())
    scores = gradient_scores(
        model, data, [layer.weight for layer in chosen], samples=params.samples,
        batch_size=params.batch_size, seed=seed,
    )
    if params.scope == "global":
        masks = global_masks(scores, params.sparsity)
    else:
        masks = layerwise_masks(scores, [params.sparsity] * len(chosen))
    bake_masks(chosen, masks)
    return model
