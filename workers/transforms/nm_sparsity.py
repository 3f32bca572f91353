r"""N:M semi-structured sparsity (2:4 by default): N nonzeros in every M consecutive weights.

Mishra et al., "Accelerating Sparse Deep Neural Networks", arXiv 2104.08378, 2021 (NVIDIA's
2:4 for sparse tensor cores); Zhou et al., "Learning N:M Fine-grained Structured Sparse Neural
Networks From Scratch", ICLR 2021. Along the input-channel axis (channels-last for
convolutions) every group ``G`` of ``m`` consecutive weights keeps its ``n`` largest:

.. math:: m_i = 1 \iff |w_i| \text{ is among the } n \text{ largest of its group } G,
          \qquad \text{sparsity} = 1 - n/m
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.transforms._common import (
    CONV_TYPES,
    LayerSelection,
    WeightLayer,
    bake_masks,
    weight_layers,
)
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(LayerSelection):
    """Parameters of ``nm`` (``m`` first: ``n`` is checked against it)."""

    m: int = Field(4, ge=2, le=64)
    """Group size M: consecutive weights along the input-channel axis."""
    n: int = Field(2, ge=1, le=64, validate_default=True)
    """Weights kept per group (N < M)."""

    @field_validator("n")
    @classmethod
    def _below_m(cls, n: int, info: ValidationInfo) -> int:
        m = info.data.get("m")
        if m is not None and n >= m:
            raise ValueError(f"N:M needs N < M, got {n}:{m}")
        return n


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


def nm_layers(
    model: nn.Module, m: int, layers: list[str] | None, exclude: list[str] | None
) -> list[WeightLayer]:
    """The chosen layers whose input-channel count is a multiple of ``m`` (others stay dense;
    naming one of them explicitly in ``layers`` is an error)."""
    chosen = weight_layers(model, layers, exclude or ())
    usable = []
    for i, layer in enumerate(chosen):
        if layer.weight.shape[1] % m == 0:
            usable.append(layer)
        elif layers is not None:
            raise SpecError(
                f"layers[{i}]",
                f"{layer.name!r} has {layer.weight.shape[1]} input channels, "
                f"not a multiple of M={m}",
            )
    return usable


@TRANSFORMS.register(
    "nm", params=Params,
    citation="Mishra et al., arXiv 2104.08378, 2021: keep the n largest |w| of every m",
)
def nm_sparsity(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """N:M fine-grained structured sparsity: in every group of ``m`` consecutive weights along
    the input-channel axis (channels-last for convolutions, as the hardware reduces) the ``n``
    of largest ``|w|`` are kept, the rest zeroed in place. Sparsity is exactly ``1 − n/m`` on
    every covered layer; layers whose input-channel count is not a multiple of ``m`` (e.g. a
    first convolution on 1-channel images) stay dense and are not counted as covered."""
    n, m = params.n, params.m
    chosen = nm_layers(model, m, params.layers, params.exclude)
    masks = [nm_mask(layer.weight, n, m, isinstance(layer.module, CONV_TYPES)) for layer in chosen]
    bake_masks(chosen, masks)
    return model
