"""Removal attacks: the registry, what an attack sees and returns, and the training loop the
training-side attacks share.

An attack is ``fn(model, strength, params, ctx) -> Attacked``. It receives its own copy of the
watermarked model (it may change it in place) and returns the model the attacker deploys plus,
for input-side attacks, the preprocessing the attacker applies to every query (test inputs and
trigger queries alike). ``strength`` is in the attack's own units, described by the
:class:`~faultlab.workers.watermark.catalog.Strength` knob of its ``Params`` model. Every attack
is one file, registered in :data:`ATTACKS` under the name of its file with its ``Params`` (an
:class:`~faultlab.workers.watermark.catalog.AttackParams`) and its citation. The families
follow the removal-attack taxonomy of the Watermark-Robustness-Toolbox (Lukas, Jiang, Li &
Kerschbaum, "SoK: How robust is image classification deep neural network watermarking?",
IEEE S&P 2022): input preprocessing, model modification, fine-tuning and retraining.

**Devices.** An attack computes on the device of the model and data it is given (the shard's
device, :meth:`AttackContext.device`): every tensor it creates names that device. Random draws
are the exception: they come from CPU generators (:meth:`AttackContext.generator`) and are
moved to the device afterwards, so an attack draws the same permutations, noise and initial
weights on every worker and a shard's result depends on its device only through the floating
point of the kernels (GPU and CPU kernels round differently; dropout masks during training come
from the device's own seeded generator).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.registry import Registry
from faultlab.workers.watermark.catalog import CHAIN, AttackParams
from faultlab.workers.watermark.embedding import Preprocess
from faultlab.workers.watermark.params import AttackSpec
from faultlab.workers.zoo import ImageData


@dataclass
class Attacked:
    """The attacker's deployed model and their input preprocessing (None: none)."""

    model: nn.Module
    preprocess: Preprocess | None = None


@dataclass
class AttackContext:
    """What an attacker has: the task's data (they hold ``attacker_fraction`` of the training
    split), a fresh model of the same architecture, and a seed."""

    data: ImageData
    seed: int
    attacker_fraction: float
    build_fresh: Callable[[int], nn.Module]
    field: str

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def data_range(self) -> tuple[float, float]:
        return float(self.data.x_train.min()), float(self.data.x_train.max())

    @property
    def device(self) -> torch.device:
        """Where the attack computes: the device of the data (the shard's device)."""
        return self.data.x_train.device

    def generator(self, salt: int) -> torch.Generator:
        """A CPU generator private to this attack, seed and purpose: draws are made on the CPU
        and moved, so they are the same on every device."""
        return torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + 7919 * salt)

    def attacker_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacker's labelled share of the training split (seeded)."""
        n = len(self.data.x_train)
        count = max(1, int(round(n * self.attacker_fraction)))
        ids = torch.randperm(n, generator=self.generator(0), device="cpu")[:count]
        ids = ids.to(self.device)
        return self.data.x_train[ids], self.data.y_train[ids]


AttackFn = Callable[[nn.Module, float, Any, AttackContext], Attacked]
"""``fn(model, strength, params, ctx) -> Attacked``; ``params`` is the attack's own ``Params``
model (an :class:`~faultlab.workers.watermark.catalog.AttackParams`)."""

#: Every attack, registered by the name of its file with its ``Params`` and citation.
ATTACKS: Registry[AttackFn] = Registry(
    "attack", "faultlab.workers.watermark.attacks", "watermark.attacks.name"
)


def compose(first: Preprocess | None, second: Preprocess | None) -> Preprocess | None:
    """``second ∘ first`` (either may be None)."""
    if first is None:
        return second
    if second is None:
        return first
    return lambda x: second(first(x))


def run_attack(
    model: nn.Module, attack: AttackSpec, strength: float, ctx: AttackContext
) -> Attacked:
    """Applies an attack (or a chain of them) to a copy of ``model``."""
    steps: list[tuple[str, float, AttackParams]] = (
        [
            (step.name, strength if step.strength is None else step.strength, step.params)
            for step in attack.steps
        ]
        if attack.name == CHAIN
        else [(attack.name, strength, attack.params)]
    )
    result = Attacked(copy.deepcopy(model))
    for name, value, params in steps:
        step_fn = ATTACKS.get(name, f"{ctx.field}.name").impl
        step = step_fn(result.model, float(value), params, ctx)
        result = Attacked(step.model, compose(result.preprocess, step.preprocess))
    result.model.eval()
    return result


def weight_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensors of every convolution and linear layer (what compression touches)."""
    layers = nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear
    return [m.weight for m in model.modules() if isinstance(m, layers)]


def train_epochs(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    gen: torch.Generator,
    parameters: Iterable[nn.Parameter] | None = None,
    train_mode: bool = True,
    temperature: float = 0.0,
) -> nn.Module:
    """Adam on the attacker's data. ``targets`` are labels, or probabilities (soft targets,
    matched at ``temperature`` as in Hinton et al. 2015) when they are 2-D. The batch order
    is drawn on the CPU (``gen``) and moved to the data's device."""
    chosen = parameters if parameters is not None else model.parameters()
    params = [p for p in chosen if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    model.train(train_mode)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen, device="cpu").to(x.device)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            out = model(x[idx])
            if targets.dim() == 2:
                t = max(temperature, 1e-6)
                loss = (
                    F.kl_div(F.log_softmax(out / t, dim=1), targets[idx], reduction="batchmean")
                    * t
                    * t
                )
            else:
                loss = F.cross_entropy(out, targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model
