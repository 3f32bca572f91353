"""N:M semi-structured sparsity (2:4 by default): N nonzeros in every M consecutive weights."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.transforms._common import (
    CONV_TYPES,
    WeightLayer,
    bake_masks,
    check_int,
    check_keys,
    check_layer_selection,
    weight_layers,
)
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"n", "m", "layers", "exclude"}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_int(params, "n", 1, 64)
    check_int(params, "m", 2, 64)
    n, m = params.get("n", 2), params.get("m", 4)
    if isinstance(n, int) and isinstance(m, int) and n >= m:
        raise SpecError("n", f"N:M needs N < M, got {n}:{m}")
    check_layer_selection(params)


def reduction_last(weight: torch.Tensor, is_conv: bool) -> torch.Tensor:
    """The weight with its input-channel axis last: ``(out, in)`` for linear layers,
    ``(out, k..., in)`` for convolutions (the channels-last layout sparse kernels reduce over)."""
    if is_conv and weight.dim() > 2:
        return weight.movedim(1, -1)
    return weight


def nm_mask(weight: torch.Tensor, n: int, m: int, is_conv: bool) -> torch.Tensor:
    """Mask keeping the ``n`` largest ``|w|`` of every ``m`` consecutive input channels."""
    view = reduction_last(weight.detach().abs(), is_conv)
    groups = view.reshape(-1, m)
    keep = torch.topk(groups, k=n, dim=1).indices
    mask = torch.zeros_like(groups).scatter_(1, keep, 1.0).reshape(view.shape)
    if is_conv and weight.dim() > 2:
        mask = mask.movedim(-1, 1)
    return mask.contiguous()


def nm_layers(model: nn.Module, m: int, layers: list[str] | None, exclude: list[str] | None) -> list[WeightLayer]:
    """The chosen layers whose input-channel count is a multiple of ``m`` (others stay dense;
    naming one of them explicitly in ``layers`` is an error)."""
    chosen = weight_layers(model, layers, exclude or ())
    usable = []
    for i, layer in enumerate(chosen):
        if layer.weight.shape[1] % m == 0:
            usable.append(layer)
        elif layers is not None:
            raise SpecError(
                f"layers[{i}]", f"{layer.name!r} has {layer.weight.shape[1]} input channels, not a multiple of M={m}"
            )
    return usable


@register_transform("nm", validate=validate)
def nm_sparsity(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    n: int = 2,
    m: int = 4,
    layers: list[str] | None = None,
    exclude: list[str] | None = None,
) -> nn.Module:
    """N:M fine-grained structured sparsity (Mishra et al., "Accelerating Sparse Deep Neural
    Networks", arXiv 2104.08378, 2021 — NVIDIA's 2:4 for sparse tensor cores; Zhou et al.,
    "Learning N:M Fine-grained Structured Sparse Neural Networks From Scratch", ICLR 2021):
    in every group of ``m`` consecutive weights along the input-channel axis (channels-last
    for convolutions, as the hardware reduces) the ``n`` of largest ``|w|`` are kept, the
    rest zeroed in place. Sparsity is exactly ``1 − n/m`` on every covered layer; layers whose
    input-channel count is not a multiple of ``m`` (e.g. a first convolution on 1-channel
    images) stay dense and are not counted as covered."""
    chosen = nm_layers(model, m, layers, exclude)
    masks = [nm_mask(layer.weight, n, m, isinstance(layer.module, CONV_TYPES)) for layer in chosen]
    bake_masks(chosen, masks)
    return model
