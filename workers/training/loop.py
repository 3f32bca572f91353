"""Full-batch training of one cell with its learning curves.

One step is one gradient step on the cross-entropy of the labelled nodes (full batch, so
``sgd`` is gradient descent, the setting of Xu et al., ICML 2021). At every step the loss
and the accuracies of the labelled, validation and test nodes are read off the logits of
that step's forward pass (no dropout: the training forward is the evaluation forward), so
``steps_to_target`` counts updates exactly: the loss at step ``t`` is ``L(θ_t)``, after
``t`` updates. The curves keep ``curve_points`` evenly strided points plus the last one.

Wall time starts before ``model.precompute``: SGC's ``S^K X`` (Wu et al., ICML 2019) is
part of its training time. Training is deterministic in the seed (model initialisation
under ``torch.manual_seed(seed)``; the labelled nodes from a generator seeded with it) at a
fixed intra-op thread count. A cell trains on its graph's device: the split is drawn on the
CPU and moved, the model is initialised on the CPU and moved (the same weights everywhere),
and the checkpoint is saved as CPU tensors (:mod:`~faultlab.workers.training.device`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.training.analysis import linear_rate
from faultlab.workers.training.device import checkpoint_bytes
from faultlab.workers.training.models import TrainableModel, build_variant
from faultlab.workers.zoo import GraphData

CURVE_KEYS = ("step", "loss", "train_acc", "val_acc", "test_acc", "wall_seconds")
LIVE_INTERVAL_SECONDS = 0.5
"""Live curve points (``on_point``) are sent at most this often per cell, plus the first
and the last."""


@dataclass(frozen=True)
class Split:
    """Node ids: the labelled nodes (trained on), validation and test nodes."""

    labelled: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor


def _take_per_class(pool: torch.Tensor, y: torch.Tensor, counts: dict[int, int],
                    gen: torch.Generator) -> torch.Tensor:
    chosen = []
    for cls, count in counts.items():
        nodes = pool[y[pool] == cls]
        chosen.append(nodes[torch.randperm(len(nodes), generator=gen, device="cpu")[:count]])
    return torch.cat(chosen).sort().values


def label_split(graph: GraphData, labels: dict[str, Any], seed: int) -> Split:
    """The labelled nodes of one cell, drawn from the train split by the label rule (on the
    CPU, from a generator seeded with ``seed``: the same nodes on every device), as node ids
    on the graph's device."""
    data = graph.data
    pool, y = graph.split("train").cpu(), data.y.cpu()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    classes = [int(c) for c in torch.unique(y[pool])]
    if labels.get("per_class") is not None:
        counts = {c: int(labels["per_class"]) for c in classes}
        labelled = _take_per_class(pool, y, counts, gen)
    elif labels.get("fraction") is not None and labels.get("balanced", True):
        frac = float(labels["fraction"])
        counts = {c: max(1, round(frac * int((y[pool] == c).sum()))) for c in classes}
        labelled = _take_per_class(pool, y, counts, gen)
    elif labels.get("fraction") is not None:
        count = max(1, round(float(labels["fraction"]) * len(pool)))
        order = torch.randperm(len(pool), generator=gen, device="cpu")
        labelled = pool[order[:count]].sort().values
    else:
        labelled = pool
    if getattr(data, "val_mask", None) is not None:
        val = data.val_mask.nonzero().flatten().cpu()
    else:
        keep = torch.ones(data.num_nodes, dtype=torch.bool, device="cpu")
        keep[labelled] = False
        val = pool[keep[pool]]
    device = data.y.device
    return Split(labelled.to(device), val.to(device), graph.split("test"))


def _optimizer(model: nn.Module, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"],
                               weight_decay=recipe["weight_decay"])
    return torch.optim.Adam(model.parameters(), lr=recipe["lr"],
                            weight_decay=recipe["weight_decay"])


def _scheduler(opt: torch.optim.Optimizer, recipe: dict[str, Any]) -> Any:
    epochs = int(recipe["epochs"])
    if recipe["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if recipe["schedule"] == "step":
        marks = sorted({max(1, epochs // 2), max(1, 3 * epochs // 4)})
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=marks, gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _accuracy(logits: torch.Tensor, y: torch.Tensor, ids: torch.Tensor) -> float:
    if len(ids) == 0:
        return math.nan
    return float((logits[ids].argmax(1) == y[ids]).float().mean())


@dataclass
class _Tracker:
    """Running state of one cell: the per-step losses, the thresholds crossed, the curve."""

    loss_target: float | None
    loss_ratio: float | None
    accuracy_target: float
    stride: int
    losses: list[float]
    curve: dict[str, list[float]]
    steps_to_target: int | None = None
    target_loss: float | None = None
    steps_to_accuracy: int | None = None
    time_to_accuracy: float | None = None
    on_point: Callable[[dict[str, float]], None] | None = None
    last_sent: float = -math.inf

    def observe(self, step: int, loss: float, accs: dict[str, float], split: str,
                wall: float, last: bool) -> None:
        if not self.losses:  # the relative target is a fraction of the initial loss
            ratio = self.loss_ratio
            self.target_loss = self.loss_target if self.loss_target is not None else (
                None if ratio is None else ratio * loss)
        self.losses.append(loss)
        reached = self.target_loss is not None and loss <= self.target_loss
        if self.steps_to_target is None and reached:
            self.steps_to_target = step
        if self.steps_to_accuracy is None and accs[split] >= self.accuracy_target:
            self.steps_to_accuracy, self.time_to_accuracy = step, wall
        if step % self.stride == 0 or last or self.steps_to_target == step:
            if not self.curve["step"] or self.curve["step"][-1] != step:
                for key, value in zip(CURVE_KEYS, (step, loss, accs["train"], accs["val"],
                                                   accs["test"], wall), strict=True):
                    self.curve[key].append(value)
                self._send(wall, last)

    def _send(self, wall: float, last: bool) -> None:
        if self.on_point is None or not (last or wall - self.last_sent >= LIVE_INTERVAL_SECONDS):
            return
        self.last_sent = wall
        self.on_point({key: self.curve[key][-1] for key in CURVE_KEYS})


def train_cell(
    graph: GraphData, variant: dict[str, Any], recipe: dict[str, Any], targets: dict[str, Any],
    seed: int, curve_points: int, on_point: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Trains one cell and returns its result: curves, final metrics, speed figures, and the
    trained ``state_dict`` as safetensors bytes (``checkpoint``). ``on_point`` receives curve
    points while it trains (throttled to one per :data:`LIVE_INTERVAL_SECONDS`)."""
    split = label_split(graph, recipe["labels"], seed)
    data = graph.data
    torch.manual_seed(seed)  # initialised on the CPU, then moved: the same weights anywhere
    model = build_variant(variant, graph.num_features, graph.num_classes, cached=True).to(
        data.y.device)
    start = time.perf_counter()
    inputs = model.precompute(data.x, data.edge_index)
    precompute = time.perf_counter() - start
    opt, epochs = _optimizer(model, recipe), int(recipe["epochs"])
    sched = _scheduler(opt, recipe)
    absolute = targets.get("loss") or recipe.get("loss_target")
    tracker = _Tracker(absolute, targets.get("loss_ratio"), float(targets["accuracy"]),
                       max(1, math.ceil(epochs / curve_points)), [], {k: [] for k in CURVE_KEYS},
                       on_point=on_point)
    ids = {"train": split.labelled, "val": split.val, "test": split.test}
    status, loss_target = "completed", recipe.get("loss_target")
    model.train()
    for step in range(epochs + 1):
        opt.zero_grad()
        logits = model.head(*inputs)
        loss = F.cross_entropy(logits[split.labelled], data.y[split.labelled])
        value = float(loss.detach())
        accs = {name: _accuracy(logits.detach(), data.y, nodes) for name, nodes in ids.items()}
        reached = loss_target is not None and value <= loss_target
        stop = step == epochs or reached or not math.isfinite(value)
        tracker.observe(step, value, accs, targets["accuracy_split"],
                        time.perf_counter() - start, stop)
        if not math.isfinite(value):
            status = "diverged"
        elif reached:
            status = "target_reached"
        elif step == epochs and loss_target is not None:
            status = "target_not_reached"
        if stop:
            break
        loss.backward()
        opt.step()
        sched.step()
    train_seconds = time.perf_counter() - start
    return _result(model, inputs, data.y, ids, tracker, status, step, precompute, train_seconds)


def _result(model: TrainableModel, inputs: tuple[torch.Tensor, ...], y: torch.Tensor,
            ids: dict[str, torch.Tensor], tracker: _Tracker, status: str, steps: int,
            precompute: float, train_seconds: float) -> dict[str, Any]:
    model.eval()
    with torch.no_grad():
        logits = model.head(*inputs)
    if status == "diverged":  # a crossing on the way to NaN is no convergence
        tracker.steps_to_target = None
    window = tracker.losses if tracker.steps_to_target is None else (
        tracker.losses[: tracker.steps_to_target + 1])
    rate = linear_rate(window)
    return {
        "status": status,
        "steps": steps,
        "labelled": len(ids["train"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "initial_loss": tracker.losses[0],
        "final_loss": tracker.losses[-1],
        "min_loss": min(tracker.losses),
        "train_acc": _accuracy(logits, y, ids["train"]),
        "val_acc": _accuracy(logits, y, ids["val"]),
        "test_acc": _accuracy(logits, y, ids["test"]),
        "target_loss": tracker.target_loss,
        "steps_to_target": tracker.steps_to_target,
        "steps_to_accuracy": tracker.steps_to_accuracy,
        "time_to_accuracy_seconds": tracker.time_to_accuracy,
        "rate": rate["slope"],
        "rate_r2": rate["r2"],
        "precompute_seconds": precompute,
        "train_seconds": train_seconds,
        "curve": tracker.curve,
        "checkpoint": checkpoint_bytes(model),
    }


__all__ = ["CURVE_KEYS", "Split", "label_split", "train_cell"]
