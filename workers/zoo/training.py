"""Training recipes and inference helpers shared by every zoo model (images and graphs)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.zoo.registry import Dataset, GraphData, ImageData


def predict_logits(
    model: nn.Module, data: Dataset, ids: torch.Tensor | None = None, split: str = "test",
    batch_size: int = 1024,
) -> torch.Tensor:
    """Logits of ``model`` on inputs ``ids`` of a split (all of it when ``ids`` is None).

    Image models are called as ``model(x)``; graph models as ``model(x, edge_index)`` on the
    whole graph, and the rows of ``ids`` (node ids) are returned.
    """
    with torch.no_grad():
        if isinstance(data, GraphData):
            d = data.data
            out = model(d.x, d.edge_index)
            nodes = data.split(split) if ids is None else ids
            return out[nodes]
        x, _ = data.split(split)
        if ids is not None:
            x = x[ids]
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def forward_batches(
    data: Dataset, split: str, size: int | None, chunk: int
) -> tuple[list[tuple[Any, ...]], torch.Tensor | None, torch.Tensor]:
    """The positional arguments of each forward over a split, the evaluated node ids, labels.

    Images: one ``(x,)`` per chunk of at most ``chunk`` inputs, ids None. Graphs: a single
    ``(x, edge_index)`` over the whole graph, with the split's first ``size`` node ids.

    Slices are copies, not views: pickling a view writes its whole storage, so a campaign
    context holding 16 images cut from a 2000-image split once carried all 2000 to every
    worker (25 MB instead of 0.2 MB through Ray's object store, per campaign and worker).
    """
    if isinstance(data, GraphData):
        graph = data.data
        ids = data.split(split)
        if size is not None:
            ids = ids[:size].clone()
        return [(graph.x, graph.edge_index)], ids, graph.y[ids]
    x, y = data.split(split)
    if size is not None:
        x, y = x[:size], y[:size].clone()
    return [(x[i : i + chunk].clone(),) for i in range(0, len(x), chunk)], None, y


def labels(data: Dataset, ids: torch.Tensor | None = None, split: str = "test") -> torch.Tensor:
    if isinstance(data, GraphData):
        nodes = data.split(split) if ids is None else ids
        return data.data.y[nodes]
    _, y = data.split(split)
    return y if ids is None else y[ids]


def evaluate(model: nn.Module, data: Dataset, split: str = "test") -> float:
    """Top-1 accuracy on a split."""
    was_training = model.training
    model.eval()
    pred = predict_logits(model, data, split=split).argmax(1)
    model.train(was_training)
    return float((pred == labels(data, split=split)).float().mean())


def train_model(
    model: nn.Module,
    data: Dataset,
    *,
    seed: int = 0,
    epochs: int = 30,
    lr: float = 1e-2,
    weight_decay: float = 5e-4,
    batch_size: int = 64,
    **_: Any,
) -> nn.Module:
    """Adam on cross-entropy: mini-batches for images, full-batch for graphs.

    Deterministic in ``seed`` on any machine: training runs single-threaded, because the
    reduction order of multi-threaded kernels changes the low bits of the weights, and with
    them the model digest that every trial's cache key includes.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(model, data, seed=seed, epochs=epochs, lr=lr, weight_decay=weight_decay,
                      batch_size=batch_size)
    finally:
        torch.set_num_threads(threads)


def _train(
    model: nn.Module, data: Dataset, *, seed: int, epochs: int, lr: float, weight_decay: float,
    batch_size: int,
) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    if isinstance(data, GraphData):
        d = data.data
        for _ in range(epochs):
            opt.zero_grad()
            loss = F.cross_entropy(model(d.x, d.edge_index)[d.train_mask], d.y[d.train_mask])
            loss.backward()
            opt.step()
    else:
        assert isinstance(data, ImageData)
        x, y = data.x_train, data.y_train
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                idx = order[i : i + batch_size]
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    model.eval()
    return model
