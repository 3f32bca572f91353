"""Training loops shared by transforms and the sparsity engine: fine-tuning that keeps
pruned weights at zero, and knowledge distillation. Deterministic in ``seed``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.transforms._common import is_graph, weight_layers

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(student_logits, labels, ids)``; ``ids`` index the training inputs of the batch."""


def zero_masks(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight, mask)`` for every prunable weight that holds zeros: masks to re-apply
    after each optimiser step, so fine-tuning never regrows pruned weights."""
    pairs = []
    for layer in weight_layers(model):
        mask = layer.weight.detach() != 0
        if not bool(mask.all()):
            pairs.append((layer.weight, mask))
    return pairs


def train(
    model: nn.Module,
    data: Any,
    *,
    epochs: float,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    keep_zeros: bool = True,
    loss_fn: LossFn | None = None,
) -> nn.Module:
    """Adam on cross-entropy (or ``loss_fn``) for ``epochs`` passes over the training split
    (fractions of an epoch allowed: that share of the mini-batches). Graphs train
    full-batch, one step per epoch. Pruned weights stay zero when ``keep_zeros``."""
    params = [p for p in model.parameters() if p.requires_grad and p.is_floating_point()]
    if epochs <= 0 or not params:
        return model
    masks = zero_masks(model) if keep_zeros else []
    if loss_fn is None:
        loss_fn = _graph_cross_entropy if is_graph(data) else _cross_entropy
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    was_training = model.training
    model.train()

    def step(logits: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor) -> None:
        opt.zero_grad()
        loss_fn(logits, labels, ids).backward()
        opt.step()
        with torch.no_grad():
            for weight, mask in masks:
                weight.mul_(mask)

    if is_graph(data):
        graph = data.data
        train_ids = data.split("train")
        steps = max(1, round(epochs))
        for _ in range(steps):
            out = model(graph.x, graph.edge_index)
            step(out, graph.y, train_ids)
    else:
        x, y = data.split("train")
        batches_per_epoch = (len(x) + batch_size - 1) // batch_size
        remaining = max(1, round(epochs * batches_per_epoch))
        while remaining > 0:
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                if remaining == 0:
                    break
                ids = order[i : i + batch_size]
                step(model(x[ids]), y[ids], ids)
                remaining -= 1
    model.train(was_training)
    model.eval()
    return model


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def _graph_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor
) -> torch.Tensor:
    """The model's output covers every node; only the training nodes ``ids`` are labelled."""
    return F.cross_entropy(logits[ids], labels[ids])


def finetune(
    model: nn.Module,
    data: Any,
    *,
    epochs: float,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    keep_zeros: bool = True,
) -> nn.Module:
    """Fine-tunes with cross-entropy on the training split, keeping pruned weights at zero."""
    return train(
        model, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, keep_zeros=keep_zeros
    )


def distillation_loss(
    teacher_logits: torch.Tensor, temperature: float, alpha: float, graph: bool
) -> LossFn:
    """Hinton et al. (2015): ``α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y)``.

    For images ``teacher_logits`` are indexed by training-input id; for graphs they cover all
    nodes, the soft term uses every node (transductive) and the hard term the labelled ones.
    """
    soft_teacher = F.softmax(teacher_logits / temperature, dim=1)

    def loss(logits: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        target = soft_teacher if graph else soft_teacher[ids]
        soft = F.kl_div(F.log_softmax(logits / temperature, dim=1), target, reduction="batchmean")
        hard = (
            F.cross_entropy(logits[ids], labels[ids]) if graph
            else F.cross_entropy(logits, labels)
        )
        return alpha * temperature**2 * soft + (1.0 - alpha) * hard

    return loss
