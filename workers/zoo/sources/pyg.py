"""``pyg:<Class>``: PyTorch Geometric's basic GNNs, built by PyG from bounded keyword options.

The classes are PyG's :class:`~torch_geometric.nn.models.basic_gnn.BasicGNN` models (Fey &
Lenssen, "Fast Graph Representation Learning with PyTorch Geometric", ICLR-W 2019):
``GCN`` (Kipf & Welling, ICLR 2017, :math:`X' = \\hat D^{-1/2} \\hat A \\hat D^{-1/2} X W`),
``GraphSAGE`` (Hamilton et al., NeurIPS 2017), ``GIN`` (Xu et al., ICLR 2019), ``GAT``
(Veličković et al., ICLR 2018) and ``EdgeCNN`` (Wang et al., TOG 2019), each a stack of
``num_layers`` of that convolution. No user code runs: the spec names a class from this closed
set and gives options that :class:`PygParams` bounds before anything is allocated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from faultlab.errors import SpecError
from faultlab.registry import pydantic_error
from faultlab.workers.zoo.sources.budget import bounded_build

MAX_CHANNELS = 4096
"""Largest ``in_channels`` / ``hidden_channels`` / ``out_channels``."""
CLASSES = ("GCN", "GraphSAGE", "GIN", "GAT", "EdgeCNN")
"""The ``pyg:`` names (``PNA`` is left out: it needs the degree histogram of a graph)."""


class PygParams(BaseModel):
    """Keyword options of a ``pyg:`` model (PyG's own argument names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_channels: int | None = Field(None, ge=1, le=MAX_CHANNELS)
    """Input features per node (default: the dataset's)."""
    hidden_channels: int = Field(64, ge=1, le=MAX_CHANNELS)
    """Features of the hidden layers."""
    num_layers: int = Field(2, ge=1, le=64)
    """Message-passing layers."""
    out_channels: int | None = Field(None, ge=1, le=MAX_CHANNELS)
    """Output features (default: the dataset's classes)."""
    dropout: float = Field(0.0, ge=0.0, le=1.0)
    """Dropout probability between layers."""
    act: Literal["relu", "elu", "gelu", "leaky_relu", "tanh", "sigmoid", "silu"] | None = "relu"
    """Activation between layers."""
    norm: Literal["batch_norm", "layer_norm", "instance_norm", "graph_norm"] | None = None
    """Normalization between layers."""
    jk: Literal["last", "cat", "max"] | None = None
    """Jumping-knowledge mode."""
    heads: int | None = Field(None, ge=1, le=64)
    """Attention heads (``GAT`` only)."""
    v2: bool | None = None
    """GATv2 attention (``GAT`` only)."""
    aggr: Literal["mean", "max", "sum"] | None = None
    """Neighbourhood aggregation (``GraphSAGE`` and ``EdgeCNN``)."""
    train_eps: bool | None = None
    """Learnable epsilon (``GIN`` only)."""


_ONLY_FOR = {"heads": ("GAT",), "v2": ("GAT",), "aggr": ("GraphSAGE", "EdgeCNN"),
             "train_eps": ("GIN",)}


def parse_params(name: str, options: dict[str, Any], field: str) -> PygParams:
    """Validates the options of ``pyg:<name>``; errors name ``<field>.<option>``."""
    try:
        params = PygParams.model_validate(options)
    except ValidationError as exc:
        raise pydantic_error(exc, field) from None
    for option, classes in _ONLY_FOR.items():
        if getattr(params, option) is not None and name not in classes:
            raise SpecError(f"{field}.{option}", f"is not an option of {name}", classes)
    return params


def build(name: str, options: dict[str, Any], *, in_channels: int | None,
          out_channels: int | None, field: str = "model") -> nn.Module:
    """``torch_geometric.nn.models.<name>(**options)``; the dataset fills in the channels."""
    if name not in CLASSES:
        raise SpecError(f"{field}.name", f"unknown PyG model {name[:60]!r}",
                        [f"pyg:{c}" for c in CLASSES])
    params = parse_params(name, options, f"{field}.options")
    kwargs = params.model_dump(exclude_none=True)
    kwargs.setdefault("in_channels", in_channels)
    kwargs.setdefault("out_channels", out_channels)
    for channels in ("in_channels", "out_channels"):
        if kwargs[channels] is None:
            raise SpecError(f"{field}.options.{channels}", "is required (no dataset to take "
                            "it from)")
    kwargs["act"] = params.act  # ``act: null`` means no activation, not PyG's default

    import torch_geometric.nn.models as models

    cls = getattr(models, name)
    return bounded_build(lambda: cls(**kwargs), f"{field}.options")
