r"""Low-rank factorization of linear and convolution layers by truncated SVD.

Denton et al., "Exploiting Linear Structure Within Convolutional Networks for Efficient
Evaluation", NeurIPS 2014; Jaderberg et al., BMVC 2014; the low-rank family of Cheng et al.'s
compression survey, 2017. A weight ``W ∈ R^{out×K}`` (``K = in·k…`` for a convolution) is
replaced by its best rank-``r`` approximation (Eckart–Young):

.. math:: W \approx A B, \quad A = U_r \Sigma_r^{1/2}, \ B = \Sigma_r^{1/2} V_r^{\top},
          \qquad r = \lceil \rho \cdot \min(out, K) \rceil

with ``ρ = rank_ratio``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from faultlab.workers.transforms._common import (
    LayerSelection,
    Ratio,
    pyg_linear_type,
    rank_for,
    replace_module,
    weight_layers,
)
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(LayerSelection):
    """Parameters of ``low_rank``."""

    rank_ratio: Ratio
    """Fraction ρ of the full rank kept, in (0, 1]."""
    force: bool = False
    """Factorize even where the factors are not smaller than the layer (and grouped convs)."""


def svd_factors(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, B)`` with ``A @ B`` the best rank-``rank`` approximation of ``matrix`` in the
    Frobenius norm (Eckart–Young): ``A = U_r √Σ_r``, ``B = √Σ_r V_rᵀ``."""
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def factorize_linear(weight: torch.Tensor, bias: torch.Tensor | None, rank: int) -> nn.Sequential:
    out_f, in_f = weight.shape
    a, b = svd_factors(weight.detach().double(), rank)
    first = nn.Linear(in_f, rank, bias=False)
    second = nn.Linear(rank, out_f, bias=bias is not None)
    with torch.no_grad():
        first.weight.copy_(b.to(weight.dtype))
        second.weight.copy_(a.to(weight.dtype))
        if bias is not None and second.bias is not None:
            second.bias.copy_(bias.detach())
    return nn.Sequential(first, second)


def factorize_conv(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, rank: int) -> nn.Sequential:
    """A ``k×k`` convolution ``in → rank`` followed by a ``1×1`` convolution ``rank → out``
    (the spatial-then-pointwise scheme of Zhang et al., "Accelerating Very Deep Convolutional
    Networks for Classification and Detection", TPAMI 2016)."""
    weight = conv.weight.detach()
    out_c = weight.shape[0]
    a, b = svd_factors(weight.reshape(out_c, -1).double(), rank)
    cls = type(conv)
    first = cls(
        conv.in_channels, rank, conv.kernel_size, conv.stride,  # type: ignore[arg-type]
        conv.padding, conv.dilation,  # type: ignore[arg-type]
        groups=1, bias=False, padding_mode=conv.padding_mode,
    )
    ones = (1,) * (weight.dim() - 2)
    second = cls(rank, out_c, ones, bias=conv.bias is not None)  # type: ignore[arg-type]
    with torch.no_grad():
        first.weight.copy_(b.reshape(rank, *weight.shape[1:]).to(weight.dtype))
        second.weight.copy_(a.reshape(out_c, rank, *ones).to(weight.dtype))
        if conv.bias is not None and second.bias is not None:
            second.bias.copy_(conv.bias.detach())
    return nn.Sequential(first, second)


@TRANSFORMS.register(
    "low_rank", params=Params,
    citation="Denton et al., NeurIPS 2014: W ≈ U_r Σ_r V_rᵀ, r = ⌈ρ · min(out, K)⌉",
)
def low_rank(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """Truncated-SVD low-rank factorization. A weight
    ``W ∈ R^{out×K}`` (``K = in·k…`` for a convolution) keeps rank
    ``r = ⌈rank_ratio · min(out, K)⌉``: a linear layer becomes ``Linear(in→r) ∘ Linear(r→out)``,
    a convolution becomes a ``k×k`` conv ``in→r`` (same stride, padding, dilation) then a
    ``1×1`` conv ``r→out`` carrying the bias — both as an ``nn.Sequential`` at the layer's
    name (PyG convolutions call it like their ``Linear``). Layers where the factors would not
    be smaller (``r·(out+K) ≥ out·K``) or grouped convolutions are left alone unless
    ``force``."""
    pyg = pyg_linear_type()
    for layer in weight_layers(model, params.layers, params.exclude or ()):
        module, weight = layer.module, layer.weight
        out_dim, k_dim = weight.shape[0], weight[0].numel()
        rank = rank_for(params.rank_ratio, min(out_dim, k_dim))
        if rank * (out_dim + k_dim) >= out_dim * k_dim and not params.force:
            continue
        if isinstance(module, nn.Linear) or (pyg is not None and isinstance(module, pyg)):
            new = factorize_linear(weight, module.bias, rank)  # type: ignore[arg-type]
        elif isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.groups == 1:
            new = factorize_conv(module, rank)
        else:
            continue
        new.train(module.training)
        replace_module(model, layer.name, new)
    return model
