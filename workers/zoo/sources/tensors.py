"""``dataset: {name: tensors, file}``: a dataset from a safetensors file, checked key by key.

Images (classification): ``x_train`` and ``x_test`` float N×C×H×W, ``y_train`` and ``y_test``
integer class ids of length N. A graph (node classification): ``x`` float N×F, ``edge_index``
integer 2×E with ids below N, ``y`` integer of length N, ``train_mask`` and ``test_mask``
boolean of length N, and optionally ``edge_weight`` float of length E. Nothing else is
accepted, so a file means one thing.
"""

from __future__ import annotations

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from faultlab.errors import SpecError
from faultlab.workers.zoo.registry import GraphData, ImageData

IMAGE_KEYS = ("x_train", "y_train", "x_test", "y_test")
GRAPH_KEYS = ("x", "edge_index", "y", "train_mask", "test_mask")
GRAPH_OPTIONAL_KEYS = ("edge_weight",)


def _float(t: torch.Tensor, key: str, dims: int, field: str) -> torch.Tensor:
    if not t.is_floating_point() or t.dim() != dims:
        raise SpecError(field, f"{key} must be a float tensor of {dims} dimensions, got "
                        f"{t.dtype} of shape {tuple(t.shape)}")
    return t.float()


def _ids(t: torch.Tensor, key: str, shape: tuple[int, ...], field: str) -> torch.Tensor:
    if t.is_floating_point() or t.dtype == torch.bool or tuple(t.shape) != shape:
        raise SpecError(field, f"{key} must be an integer tensor of shape {shape}, got "
                        f"{t.dtype} of shape {tuple(t.shape)}")
    if t.numel() and int(t.min()) < 0:
        raise SpecError(field, f"{key} must not be negative")
    return t.long()


def _images(parts: dict[str, torch.Tensor], name: str, field: str) -> ImageData:
    x_train = _float(parts["x_train"], "x_train", 4, field)
    x_test = _float(parts["x_test"], "x_test", 4, field)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise SpecError(field, "x_train and x_test must have the same C×H×W")
    y_train = _ids(parts["y_train"], "y_train", (len(x_train),), field)
    y_test = _ids(parts["y_test"], "y_test", (len(x_test),), field)
    labels = torch.cat([y_train, y_test])
    num_classes = int(labels.max()) + 1 if labels.numel() else 0
    if num_classes < 2:
        raise SpecError(field, "labels must name at least two classes")
    return ImageData(name, x_train, y_train, x_test, y_test, num_classes)


def _mask(t: torch.Tensor, key: str, n: int, field: str) -> torch.Tensor:
    if t.dtype not in (torch.bool, torch.uint8) or tuple(t.shape) != (n,):
        raise SpecError(field, f"{key} must be a boolean tensor of shape ({n},), got "
                        f"{t.dtype} of shape {tuple(t.shape)}")
    return t.bool()


def _graph(parts: dict[str, torch.Tensor], name: str, field: str) -> GraphData:
    from torch_geometric.data import Data

    x = _float(parts["x"], "x", 2, field)
    n = len(x)
    edge_index = parts["edge_index"]
    edge_index = _ids(edge_index, "edge_index", (2, edge_index.shape[-1]), field)
    if edge_index.numel() and int(edge_index.max()) >= n:
        raise SpecError(field, f"edge_index must hold node ids below {n}")
    data = Data(x=x, edge_index=edge_index, y=_ids(parts["y"], "y", (n,), field),
                train_mask=_mask(parts["train_mask"], "train_mask", n, field),
                test_mask=_mask(parts["test_mask"], "test_mask", n, field))
    if "edge_weight" in parts:
        weight = _float(parts["edge_weight"], "edge_weight", 1, field)
        if len(weight) != edge_index.shape[1]:
            raise SpecError(field, "edge_weight must have one value per edge")
        data.edge_weight = weight
    num_classes = int(data.y.max()) + 1 if n else 0
    if num_classes < 2:
        raise SpecError(field, "y must name at least two classes")
    return GraphData(name, data, num_classes)


def load_tensors(blob: bytes, name: str, field: str = "dataset.file") -> ImageData | GraphData:
    """The images or graph in a safetensors file (see the module docstring for the keys)."""
    try:
        parts = load_safetensors(blob)
    except SafetensorError as exc:
        raise SpecError(field, f"is not a safetensors file ({str(exc)[:100]})") from None
    keys = set(parts)
    if keys == set(IMAGE_KEYS):
        return _images(parts, name, field)
    if set(GRAPH_KEYS) <= keys <= set(GRAPH_KEYS + GRAPH_OPTIONAL_KEYS):
        return _graph(parts, name, field)
    raise SpecError(field, f"has keys {', '.join(sorted(keys))[:120]}; a tensors dataset holds "
                    f"either {', '.join(IMAGE_KEYS)} (images) or {', '.join(GRAPH_KEYS)} "
                    f"[, edge_weight] (a graph)")
