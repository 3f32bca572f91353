"""Graph neural networks for node classification, built from PyG layers.

Every model is called as ``model(x, edge_index)`` and returns one row of logits per node.
Layers have stable qualified names (``conv1``, ``conv2``, ``convs.3``, ``lin_in`` ...) and
activations are separate modules (``act1``, ``acts.3``), so a fault campaign can address any
weight, bias or activation by name. No layer caches the normalised adjacency: a fault in
``edge_index`` must reach every forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.zoo.registry import GraphData, register_model

DEEP_GCN_DEPTHS = range(2, 33)


def _check_common(hidden: int, dropout: float) -> None:
    if hidden < 1:
        raise SpecError("model.options.hidden", f"must be at least 1, got {hidden!r}")
    if not 0.0 <= dropout < 1.0:
        raise SpecError("model.options.dropout", f"must lie in [0, 1), got {dropout!r}")


class GCN(nn.Module):
    """Two-layer graph convolutional network (Kipf & Welling, "Semi-Supervised
    Classification with Graph Convolutional Networks", ICLR 2017):
    ``conv2(dropout(relu(conv1(x))))`` with symmetric-normalised propagation
    ``D^-1/2 (A + I) D^-1/2 X W``."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int, dropout: float) -> None:
        from torch_geometric.nn import GCNConv

        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden)
        self.act1 = nn.ReLU()
        self.drop1 = nn.Dropout(dropout)
        self.conv2 = GCNConv(hidden, num_classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.drop1(self.act1(self.conv1(x, edge_index)))
        return self.conv2(h, edge_index)  # type: ignore[no-any-return]


class SGC(nn.Module):
    """Simplified graph convolution (Wu et al., "Simplifying Graph Convolutional Networks",
    ICML 2019): the nonlinearities of a ``K``-layer GCN removed, leaving one linear
    classifier on ``K``-hop propagated features, ``softmax(S^K X W)``."""

    def __init__(self, in_channels: int, num_classes: int, hops: int) -> None:
        from torch_geometric.nn import SGConv

        super().__init__()
        self.conv1 = SGConv(in_channels, num_classes, K=hops, cached=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        return self.conv1(x, edge_index)  # type: ignore[no-any-return]


class GAT(nn.Module):
    """Two-layer graph attention network (Veličković et al., "Graph Attention Networks",
    ICLR 2018): ``heads`` attention heads of ``hidden`` channels concatenated, ELU, then one
    averaged output head. ``dropout`` also applies to the attention coefficients."""

    def __init__(
        self, in_channels: int, num_classes: int, hidden: int, heads: int, dropout: float
    ) -> None:
        from torch_geometric.nn import GATConv

        super().__init__()
        self.conv1 = GATConv(in_channels, hidden, heads=heads, dropout=dropout)
        self.act1 = nn.ELU()
        self.drop1 = nn.Dropout(dropout)
        self.conv2 = GATConv(hidden * heads, num_classes, heads=1, concat=False, dropout=dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.drop1(self.act1(self.conv1(x, edge_index)))
        return self.conv2(h, edge_index)  # type: ignore[no-any-return]


class GIN(nn.Module):
    """Graph isomorphism network (Xu et al., "How Powerful are Graph Neural Networks?",
    ICLR 2019) for node classification: two ``GINConv`` layers, each a two-layer MLP on
    ``(1 + eps) x_i + sum_j x_j`` with learnable ``eps``, then a linear classifier ``lin``."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int, dropout: float) -> None:
        from torch_geometric.nn import GINConv

        super().__init__()

        def mlp(cin: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

        self.conv1 = GINConv(mlp(in_channels), train_eps=True)
        self.act1 = nn.ReLU()
        self.drop1 = nn.Dropout(dropout)
        self.conv2 = GINConv(mlp(hidden), train_eps=True)
        self.act2 = nn.ReLU()
        self.drop2 = nn.Dropout(dropout)
        self.lin = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.drop1(self.act1(self.conv1(x, edge_index)))
        h = self.drop2(self.act2(self.conv2(h, edge_index)))
        return self.lin(h)  # type: ignore[no-any-return]


class GraphSAGE(nn.Module):
    """Two-layer GraphSAGE with mean aggregation (Hamilton et al., "Inductive
    Representation Learning on Large Graphs", NeurIPS 2017): ``W1 x_i + W2 mean_j x_j``."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int, dropout: float) -> None:
        from torch_geometric.nn import SAGEConv

        super().__init__()
        self.conv1 = SAGEConv(in_channels, hidden)
        self.act1 = nn.ReLU()
        self.drop1 = nn.Dropout(dropout)
        self.conv2 = SAGEConv(hidden, num_classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.drop1(self.act1(self.conv1(x, edge_index)))
        return self.conv2(h, edge_index)  # type: ignore[no-any-return]


class DeepGCN(nn.Module):
    """A GCN of ``depth`` graph convolutions of width ``hidden``, between an input projection
    ``lin_in`` and a linear classifier ``lin_out``, with identity skip connections
    ``h_l = h_{l-1} + relu(conv_l(h_{l-1})) / sqrt(depth)`` or without them
    (``h_l = relu(conv_l(h_{l-1}))``). The residual branch is scaled by ``1/sqrt(depth)`` so
    the sum of ``depth`` branches keeps the activations bounded (unscaled, a 32-layer net
    diverges at the first steps); there are no normalisation layers, so the only difference
    between the two variants is the skip path.

    For depth and skip-connection studies: Xu et al., "Optimization of Graph Neural Networks:
    Implicit Acceleration by Skip Connections and More Depth" (ICML 2021) prove that
    (linearised) GNN training converges at a linear rate and is accelerated by skip
    connections and depth; without skips, deep GCNs train slowly and over-smooth.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden: int, depth: int, skip: bool,
        dropout: float,
    ) -> None:
        from torch_geometric.nn import GCNConv

        super().__init__()
        self.skip = skip
        self.branch_scale = depth**-0.5 if skip else 1.0
        self.lin_in = nn.Linear(in_channels, hidden)
        self.act_in = nn.ReLU()
        self.drop_in = nn.Dropout(dropout)
        self.convs = nn.ModuleList(GCNConv(hidden, hidden) for _ in range(depth))
        self.acts = nn.ModuleList(nn.ReLU() for _ in range(depth))
        self.drop_out = nn.Dropout(dropout)
        self.lin_out = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h = self.drop_in(self.act_in(self.lin_in(x)))
        for conv, act in zip(self.convs, self.acts, strict=True):
            out = act(conv(h, edge_index)) * self.branch_scale
            h = h + out if self.skip else out
        return self.lin_out(self.drop_out(h))  # type: ignore[no-any-return]


@register_model("gcn", task="graph", epochs=100, lr=0.01, weight_decay=5e-4)
def gcn(data: GraphData, hidden: int = 32, dropout: float = 0.5) -> nn.Module:
    """GCN (Kipf & Welling, ICLR 2017): two GCNConv layers."""
    _check_common(hidden, dropout)
    return GCN(data.num_features, data.num_classes, hidden, dropout)


@register_model("sgc", task="graph", epochs=100, lr=0.2, weight_decay=5e-5)
def sgc(data: GraphData, hops: int = 2) -> nn.Module:
    """SGC (Wu et al., ICML 2019): one linear layer on K-hop propagated features."""
    if not 1 <= hops <= 16:
        raise SpecError("model.options.hops", f"must lie in 1..16, got {hops!r}")
    return SGC(data.num_features, data.num_classes, hops)


@register_model("gat", task="graph", epochs=100, lr=0.005, weight_decay=5e-4)
def gat(data: GraphData, hidden: int = 8, heads: int = 4, dropout: float = 0.5) -> nn.Module:
    """GAT (Veličković et al., ICLR 2018): two GATConv layers, multi-head attention."""
    _check_common(hidden, dropout)
    if heads < 1:
        raise SpecError("model.options.heads", f"must be at least 1, got {heads!r}")
    return GAT(data.num_features, data.num_classes, hidden, heads, dropout)


@register_model("gin", task="graph", epochs=100, lr=0.01, weight_decay=5e-4)
def gin(data: GraphData, hidden: int = 32, dropout: float = 0.5) -> nn.Module:
    """GIN (Xu et al., ICLR 2019): two GINConv layers (MLPs on sum aggregation) + linear."""
    _check_common(hidden, dropout)
    return GIN(data.num_features, data.num_classes, hidden, dropout)


@register_model("sage", task="graph", epochs=100, lr=0.01, weight_decay=5e-4)
def sage(data: GraphData, hidden: int = 32, dropout: float = 0.5) -> nn.Module:
    """GraphSAGE (Hamilton et al., NeurIPS 2017): two SAGEConv layers, mean aggregation."""
    _check_common(hidden, dropout)
    return GraphSAGE(data.num_features, data.num_classes, hidden, dropout)


@register_model("deep_gcn", task="graph", epochs=100, lr=0.005, weight_decay=5e-4)
def deep_gcn(
    data: GraphData, depth: int = 8, skip: bool = True, hidden: int = 32, dropout: float = 0.2
) -> nn.Module:
    """Deep GCN (2..32 GCNConv layers) with or without skip connections (Xu et al., ICML 2021)."""
    _check_common(hidden, dropout)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in DEEP_GCN_DEPTHS:
        raise SpecError("model.options.depth", f"must lie in 2..32, got {depth!r}", "2..32")
    if not isinstance(skip, bool):
        raise SpecError("model.options.skip", f"must be true or false, got {skip!r}", [True, False])
    return DeepGCN(data.num_features, data.num_classes, hidden, depth, skip, dropout)
