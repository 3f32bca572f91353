"""Mini-batch training of one image cell (the image workload), with its learning curve.

A cell: the zoo CNN of its variant behind the input adapter
(:mod:`~faultlab.workers.training.image_models`), initialised under
``torch.manual_seed(seed)``; the validation set is a seeded ``val_fraction`` of the train
split; batches are shuffled by a generator seeded with ``seed``, which also draws every
augmentation's randomness (:mod:`~faultlab.workers.training.recipes`). The loss is the
soft cross-entropy of the (mixed) targets, plus for a gated frequency input
``gate_penalty · mean_c sigmoid(ℓ_c)``; after the gate phase the top ``channels`` are
selected, the input convolution is narrowed to them, and training goes on (Xu et al., CVPR
2020). One curve point per epoch (``step`` = epochs done): mean training loss, training
accuracy of the batches' predictions against their original labels, validation and test
accuracy (evaluation mode). A cell trains on its dataset's device: the model is initialised
on the CPU and moved, the splits, batch orders and augmentations are drawn by the seeded
numpy generator and moved, the checkpoint is saved as CPU tensors
(:mod:`~faultlab.workers.training.device`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.training.device import checkpoint_bytes
from faultlab.workers.training.frequency import FrequencyFront, narrow_first_conv
from faultlab.workers.training.image_models import AdaptedCNN, build_image_model, input_values
from faultlab.workers.training.loop import CURVE_KEYS, LIVE_INTERVAL_SECONDS
from faultlab.workers.training.recipes import Pipeline, soft_cross_entropy
from faultlab.workers.training.workloads.base import OnPoint
from faultlab.workers.zoo import ImageData

GATE_LR_SCALE = 10.0
"""The gate logits' learning rate relative to the recipe's (they move from 0 within the
gate phase's few epochs)."""
FIT_IMAGES = 4096
"""Training images the frequency channels' mean and deviation are estimated from."""


def _lr(recipe: dict[str, Any], epoch: int) -> float:
    base, epochs = float(recipe["lr"]), int(recipe["epochs"])
    if recipe["schedule"] == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if recipe["schedule"] == "step":
        return base * (0.1 ** sum(epoch >= m for m in (epochs // 2, 3 * epochs // 4)))
    return base


def _optimizer(model: nn.Module, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    """The recipe's optimizer; a frequency gate's logits learn ``GATE_LR_SCALE`` × faster
    and without weight decay (their own parameter group)."""
    gate = [p for n, p in model.named_parameters() if n.endswith("gate_logits")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("gate_logits")]
    groups: list[dict[str, Any]] = [{"params": rest, "scale": 1.0}]
    if gate:
        groups.append({"params": gate, "scale": GATE_LR_SCALE, "weight_decay": 0.0})
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=recipe["lr"], momentum=recipe["momentum"],
                               weight_decay=recipe["weight_decay"])
    return torch.optim.Adam(groups, lr=recipe["lr"], weight_decay=recipe["weight_decay"])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int
             ) -> tuple[float, float]:
    """Accuracy and mean cross-entropy in evaluation mode (NaN on an empty set)."""
    if len(x) == 0:
        return math.nan, math.nan
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(x[i : i + batch])
            correct += int((logits.argmax(1) == y[i : i + batch]).sum())
            loss += float(F.cross_entropy(logits, y[i : i + batch], reduction="sum"))
    return correct / len(x), loss / len(x)


def _split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    held = int(round(n * fraction))
    return np.sort(order[held:]), np.sort(order[:held])


class _Curve:
    def __init__(self, on_point: OnPoint | None) -> None:
        self.points: dict[str, list[float]] = {k: [] for k in CURVE_KEYS}
        self.on_point, self.sent = on_point, -math.inf

    def add(self, values: tuple[float, ...], last: bool) -> None:
        for key, value in zip(CURVE_KEYS, values, strict=True):
            self.points[key].append(value)
        wall = values[-1]
        if self.on_point is not None and (last or wall - self.sent >= LIVE_INTERVAL_SECONDS):
            self.sent = wall
            self.on_point({k: self.points[k][-1] for k in CURVE_KEYS})


def _epoch(model: nn.Module, opt: torch.optim.Optimizer, pipeline: Pipeline,
           x: torch.Tensor, y: torch.Tensor, classes: int, batch: int,
           rng: np.random.Generator, penalty: float) -> tuple[float, float]:
    """One pass over ``x`` in shuffled batches: mean loss and batch-prediction accuracy."""
    model.train()
    front = getattr(model, "front", None)
    gating = isinstance(front, FrequencyFront) and front.gating
    order = torch.from_numpy(rng.permutation(len(x))).to(x.device)
    total, correct, seen = 0.0, 0, 0
    for i in range(0, len(x), batch):
        ids = order[i : i + batch]
        if len(ids) < 2:  # batch norm needs two samples
            continue
        xb, yb = x[ids], y[ids]
        xb, target = pipeline(xb, F.one_hot(yb, classes).float(), rng)
        logits = model(xb)
        loss = soft_cross_entropy(logits, target)
        if gating and penalty > 0:
            assert isinstance(front, FrequencyFront)
            loss = loss + penalty * front.probabilities().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(ids)
        correct += int((logits.detach().argmax(1) == yb).sum())
        seen += len(ids)
    return total / max(seen, 1), correct / max(seen, 1)


def train_image_cell(data: ImageData, trial: dict[str, Any], on_point: OnPoint | None = None
                     ) -> dict[str, Any]:
    """Trains one cell (see the module docstring); the result has the graph loop's shape."""
    variant, recipe, seed = trial["variant"], trial["recipe"], int(trial["seed"])
    spec = variant["input"]
    rng, device = np.random.default_rng(seed), data.x_train.device
    train_ids, val_ids = (torch.from_numpy(ids).to(device) for ids in
                          _split(len(data.x_train), float(trial["val_fraction"]), rng))
    x, y = data.x_train[train_ids], data.y_train[train_ids]
    x_val, y_val = data.x_train[val_ids], data.y_train[val_ids]
    torch.manual_seed(seed)  # initialised on the CPU, then moved: the same weights anywhere
    model = build_image_model(variant, data.input_shape, data.num_classes,
                              "training.image.variants", training=True).to(device)
    front = model.front
    gate = isinstance(front, FrequencyFront) and front.gate_logits is not None
    start = time.perf_counter()
    if isinstance(front, FrequencyFront):
        front.fit(x[:FIT_IMAGES])
        front.gating = gate
    epochs, batch = int(recipe["epochs"]), int(recipe["batch_size"])
    gate_epochs = max(1, round(float(spec.get("gate_fraction", 0.5)) * epochs))
    opt = _optimizer(model, recipe)
    curve, losses, status = _Curve(on_point), [], "completed"
    field = f"training.image.recipes[{recipe['name']}].augment"
    with Pipeline(model, recipe.get("augment") or [], field) as pipeline:
        for epoch in range(epochs):
            if gate and epoch == gate_epochs:
                opt = _select(model, int(spec["channels"]), recipe)
            for group in opt.param_groups:
                group["lr"] = _lr(recipe, epoch) * group["scale"]
            loss, train_acc = _epoch(model, opt, pipeline, x, y, data.num_classes, batch, rng,
                                     float(spec.get("gate_penalty", 0.0)))
            losses.append(loss)
            val_acc, _ = evaluate(model, x_val, y_val, int(trial["eval_batch_size"]))
            test_acc, _ = evaluate(model, data.x_test, data.y_test, int(trial["eval_batch_size"]))
            finite = math.isfinite(loss)
            curve.add((epoch + 1, loss, train_acc, val_acc, test_acc,
                       time.perf_counter() - start), last=epoch == epochs - 1 or not finite)
            if not finite:
                status = "diverged"
                break
    if gate and isinstance(front, FrequencyFront) and front.gating:  # gate phase = all epochs
        _select(model, int(spec["channels"]), recipe)
    train_seconds = time.perf_counter() - start
    return _result(model, data, trial, (x, y, x_val, y_val), losses, status, curve,
                   train_seconds)


def _select(model: AdaptedCNN, k: int, recipe: dict[str, Any]) -> torch.optim.Optimizer:
    """Static selection: keep the top ``k`` gated channels, narrow the input convolution;
    a fresh optimizer over the narrowed model."""
    front = model.front
    assert isinstance(front, FrequencyFront)
    selected = front.select(k)
    narrow_first_conv(model.net, selected)
    return _optimizer(model, recipe)


def _result(model: AdaptedCNN, data: ImageData, trial: dict[str, Any],
            sets: tuple[torch.Tensor, ...], losses: list[float], status: str, curve: _Curve,
            train_seconds: float) -> dict[str, Any]:
    x, y, x_val, y_val = sets
    batch = int(trial["eval_batch_size"])
    train_acc, _ = evaluate(model, x, y, batch)
    val_acc, _ = evaluate(model, x_val, y_val, batch)
    test_acc, test_loss = evaluate(model, data.x_test, data.y_test, batch)
    values = input_values(trial["variant"], data.input_shape)
    full = int(np.prod(data.input_shape))
    out: dict[str, Any] = {
        "status": status, "steps": len(losses), "labelled": len(x),
        "parameters": sum(p.numel() for p in model.parameters()),
        "initial_loss": losses[0], "final_loss": losses[-1], "min_loss": min(losses),
        "train_acc": train_acc, "val_acc": val_acc, "test_acc": test_acc,
        "test_loss": test_loss, "train_seconds": train_seconds,
        "input_values": values, "input_bytes": values, "input_ratio": values / full,
        "curve": curve.points,
    }
    front = model.front
    if isinstance(front, FrequencyFront):
        out["selected"] = [int(c) for c in front.selected.cpu()]
        if front.gate_logits is not None:
            out["gate_probabilities"] = [round(float(p), 6)
                                         for p in front.probabilities().detach().cpu()]
    out["checkpoint"] = checkpoint_bytes(model)
    return out


__all__ = ["evaluate", "train_image_cell"]
