"""The GNN variants a training campaign sweeps, built from PyG layers.

Every model is an encoder ``lin_in``, ``depth`` graph convolutions of width ``width`` and a
linear classifier ``lin_out``; the options change one thing each:

* ``family`` — ``gcn``: ``GCNConv``, ``H' = S H W`` with ``S = D^-1/2 (A + I) D^-1/2``
  (Kipf & Welling, ICLR 2017); ``gin``: ``GINConv``, ``H' = MLP((1 + ε) H + A H)`` with
  ``ε = 0`` (Xu et al., ICLR 2019).
* ``linear`` — identity activations everywhere (and no bias unless asked for): the
  linearized GNN of Xu, Zhang, Jegelka, Kawaguchi, "Optimization of Graph Neural Networks:
  Implicit Acceleration by Skip Connections and More Depth" (ICML 2021), whose gradient
  descent provably converges to a global minimum at a linear rate. The model is then a
  linear map of ``X``: ``f(aX₁ + bX₂) = a f(X₁) + b f(X₂)``.
* ``skip`` — ``none``: ``H_l = σ(conv(H_{l-1}))``; ``residual``:
  ``H_l = H_{l-1} + σ(conv(H_{l-1})) / √depth`` (branch scaled as the zoo's DeepGCN, so deep
  sums stay bounded); ``initial_residual`` (GCNII, Chen et al., ICML 2020):
  ``H_l = σ((1 − α) conv(H_{l-1}) + α H_0)``, ``α = 0.1``; ``jk`` (jumping knowledge,
  Xu et al., ICML 2018): the classifier reads the concatenation of every layer's output —
  the skips-to-the-output of Xu et al. (2021)'s multiscale linear GNN.
* ``norm`` — batch or layer normalisation after each convolution.

``sgc`` is Wu et al., "Simplifying Graph Convolutional Networks" (ICML 2019):
``softmax(S^K X W)``, where ``S^K X`` is computed once (:func:`sgc_features`) and only the
linear classifier is trained.

A model has ``precompute(x, edge_index)``, the inputs of ``head``, which computes the logits;
``model(x, edge_index) == model.head(*model.precompute(x, edge_index))``. Training calls
``precompute`` once (timed: SGC's precomputation is part of its training time).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

INITIAL_RESIDUAL_ALPHA = 0.1


def normalized_adjacency(
    edge_index: torch.Tensor, num_nodes: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``S = D^-1/2 (A + I) D^-1/2`` as a sparse COO matrix (PyG's ``gcn_norm``), oriented as
    PyG aggregates (``S[target, source]``)."""
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    ones = torch.ones(edge_index.size(1), dtype=dtype, device=edge_index.device)
    ei, weight = gcn_norm(edge_index, ones, num_nodes=num_nodes, add_self_loops=True)
    indices = torch.stack([ei[1], ei[0]])
    return torch.sparse_coo_tensor(indices, weight, (num_nodes, num_nodes),
                                   check_invariants=False).coalesce()


def sgc_features(x: torch.Tensor, edge_index: torch.Tensor, hops: int) -> torch.Tensor:
    """``S^K X`` (Wu et al., ICML 2019), by ``K`` sparse products."""
    s = normalized_adjacency(edge_index, x.size(0), x.dtype)
    out = x
    for _ in range(hops):
        out = torch.sparse.mm(s, out)
    return out


class SGC(nn.Module):
    """SGC: a linear classifier ``lin`` on the precomputed ``S^K X``."""

    def __init__(self, in_channels: int, num_classes: int, hops: int, bias: bool) -> None:
        super().__init__()
        self.hops = hops
        self.lin = nn.Linear(in_channels, num_classes, bias=bias)

    def precompute(self, x: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (sgc_features(x, edge_index, self.hops),)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.lin(features)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.head(*self.precompute(x, edge_index))


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def _activation(linear: bool) -> nn.Module:
    return nn.Identity() if linear else nn.ReLU()


def _conv(family: str, width: int, linear: bool, bias: bool, cached: bool) -> nn.Module:
    from torch_geometric.nn import GCNConv, GINConv

    if family == "gcn":
        return GCNConv(width, width, bias=bias, cached=cached)
    mlp = nn.Sequential(nn.Linear(width, width, bias=bias), _activation(linear),
                        nn.Linear(width, width, bias=bias))
    return GINConv(mlp, eps=0.0, train_eps=False)


class GNNVariant(nn.Module):
    """A GCN or GIN of ``depth`` convolutions with the options of the module docstring.

    Layers have stable names (``lin_in``, ``convs.3``, ``acts.3``, ``lin_out``) so a fault
    campaign can address a trained cell's weights.
    """

    def __init__(
        self, in_channels: int, num_classes: int, *, family: str, depth: int, width: int,
        skip: str, linear: bool, norm: str, bias: bool, cached: bool = False,
    ) -> None:
        super().__init__()
        self.skip = skip
        self.branch_scale = depth**-0.5 if skip == "residual" else 1.0
        self.lin_in = nn.Linear(in_channels, width, bias=bias)
        self.act_in = _activation(linear)
        self.convs = nn.ModuleList(_conv(family, width, linear, bias, cached) for _ in range(depth))
        self.norms = nn.ModuleList(_norm(norm, width) for _ in range(depth))
        self.acts = nn.ModuleList(_activation(linear) for _ in range(depth))
        readout = width * depth if skip == "jk" else width
        self.lin_out = nn.Linear(readout, num_classes, bias=bias)

    def precompute(self, x: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x, edge_index)

    def head(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h0 = h = self.act_in(self.lin_in(x))
        layers: list[torch.Tensor] = []
        for conv, norm, act in zip(self.convs, self.norms, self.acts, strict=True):
            z = norm(conv(h, edge_index))
            if self.skip == "initial_residual":
                z = (1.0 - INITIAL_RESIDUAL_ALPHA) * z + INITIAL_RESIDUAL_ALPHA * h0
            z = act(z)
            h = h + self.branch_scale * z if self.skip == "residual" else z
            layers.append(h)
        if self.skip == "jk":
            h = torch.cat(layers, dim=1)
        return self.lin_out(h)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.head(x, edge_index)


TrainableModel = SGC | GNNVariant


def build_variant(
    variant: dict[str, Any], in_channels: int, num_classes: int, cached: bool = False
) -> TrainableModel:
    """The untrained model of a variant dict (as :meth:`VariantGrid.expand` writes them).

    ``cached``: GCN layers keep ``S`` after the first forward — for training on one fixed
    graph only (a fault campaign must see a fault in ``edge_index`` in every forward)."""
    if variant["family"] == "sgc":
        return SGC(in_channels, num_classes, int(variant["depth"]), bool(variant["bias"]))
    return GNNVariant(
        in_channels, num_classes, family=variant["family"], depth=int(variant["depth"]),
        width=int(variant["width"]), skip=variant["skip"], linear=bool(variant["linear"]),
        norm=variant["norm"], bias=bool(variant["bias"]), cached=cached,
    )


__all__ = ["SGC", "GNNVariant", "TrainableModel", "build_variant", "normalized_adjacency",
           "sgc_features"]
