"""Embedding by training, shared by every trigger-set scheme, and the output-layer surgery of
the new-class mode.

Triggers are embedded the way Adi et al. (2018) and arXiv 2208.03944 do it: training on the
clean data with a batch of trigger samples mixed into every clean batch, so the model learns the
trigger behaviour without forgetting its task.

Everything runs on the model's device (:func:`model_device`); the batch order and the trigger
picks are drawn from a CPU generator and moved there, so every device trains on the same batches.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Preprocess = Callable[[torch.Tensor], torch.Tensor]
_BATCH = 1024


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a stateless model."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def final_linear(model: nn.Module, num_outputs: int | None = None) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` of ``model`` (with ``num_outputs`` outputs when given)."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and (
            num_outputs is None or module.out_features == num_outputs
        ):
            found = (name, module)
    return found


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def resize_outputs(model: nn.Module, layer: str, num_outputs: int) -> nn.Module:
    """A copy of ``model`` whose output layer ``layer`` has ``num_outputs`` outputs: existing
    rows are kept; added rows start with zero weights and a bias below every existing one, so
    the model's predictions are unchanged until training lifts the new class. The new layer is
    built on the CPU (drawing its throw-away initial weights from the CPU generator on every
    device) and moved to the old layer's device and dtype."""
    model = copy.deepcopy(model)
    old = model.get_submodule(layer)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"{layer!r} is not an nn.Linear")
    new = nn.Linear(old.in_features, num_outputs, bias=old.bias is not None, device="cpu")
    new = new.to(old.weight.device, old.weight.dtype)
    keep = min(num_outputs, old.out_features)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:keep] = old.weight[:keep]
        if old.bias is not None and new.bias is not None:
            new.bias.fill_(float(old.bias.min()) - 2.0)
            new.bias[:keep] = old.bias[:keep]
    set_submodule(model, layer, new)
    return model


def logits(model: nn.Module, x: torch.Tensor, preprocess: Preprocess | None = None) -> torch.Tensor:
    """Model outputs on ``x`` in eval mode, after the attacker's input preprocessing, computed
    on the model's device (``x`` is moved there batch by batch when it lives elsewhere)."""
    was_training = model.training
    device = model_device(model)
    model.eval()
    with torch.no_grad():
        out = []
        for i in range(0, len(x), _BATCH):
            batch = x[i : i + _BATCH].to(device)
            out.append(model(preprocess(batch) if preprocess else batch).float())
    model.train(was_training)
    return torch.cat(out)


def predictions(out: torch.Tensor) -> torch.Tensor:
    """Top-1 labels; rows with a NaN (a broken model) predict -1, which never matches."""
    pred = out.nan_to_num(nan=0.0).argmax(1)
    return torch.where(torch.isnan(out).any(1), torch.full_like(pred, -1), pred)


def embed_by_training(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    triggers: torch.Tensor,
    trigger_labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    trigger_batch: int,
    seed: int,
    backup_labels: torch.Tensor | None = None,
    backup_weight: float = 0.0,
    num_classes: int | None = None,
) -> nn.Module:
    """Trains ``model`` in place with ``trigger_batch`` triggers mixed into every clean batch.

    With ``backup_labels`` the triggers also learn, among the first ``num_classes`` logits,
    the given labels (weight ``backup_weight``): the new-class mode's secondary signature.
    """
    device = x_train.device
    triggers, trigger_labels = triggers.to(device), trigger_labels.to(device)
    if backup_labels is not None:
        backup_labels = backup_labels.to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)  # seeds every device's generator (dropout masks)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen, device="cpu").to(device)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            pick = torch.randint(len(triggers), (trigger_batch,), generator=gen, device="cpu")
            pick = pick.to(device)
            x = torch.cat([x_train[idx], triggers[pick]])
            y = torch.cat([y_train[idx], trigger_labels[pick]])
            out = model(x)
            loss = F.cross_entropy(out, y)
            if backup_labels is not None and backup_weight > 0 and num_classes is not None:
                trig_out = out[len(idx) :, :num_classes]
                loss = loss + backup_weight * F.cross_entropy(trig_out, backup_labels[pick])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model
