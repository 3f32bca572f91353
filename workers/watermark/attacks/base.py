"""Removal attacks: the registry, what an attack sees and returns, and the training loop the
training-side attacks share.

An attack is ``fn(model, strength, params, ctx) -> Attacked``. It receives its own copy of the
watermarked model (it may change it in place) and returns the model the attacker deploys plus,
for input-side attacks, the preprocessing the attacker applies to every query (test inputs and
trigger queries alike). ``strength`` is in the attack's own units (``catalog.ATTACKS``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.errors import SpecError
from faultlab.registry import import_submodules
from faultlab.workers.watermark.catalog import ATTACKS, CHAIN
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

    def generator(self, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * salt)

    def attacker_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacker's labelled share of the training split (seeded)."""
        n = len(self.data.x_train)
        count = max(1, int(round(n * self.attacker_fraction)))
        ids = torch.randperm(n, generator=self.generator(0))[:count]
        return self.data.x_train[ids], self.data.y_train[ids]


AttackFn = Callable[..., Attacked]
"""``fn(model, strength, params, ctx) -> Attacked``; ``params`` is the attack's catalog model."""
_ATTACKS: dict[str, AttackFn] = {}


def register_attack(name: str) -> Callable[[AttackFn], AttackFn]:
    """Registers an attack under ``name`` (its parameters and knob are in ``catalog.ATTACKS``)."""

    def deco(fn: AttackFn) -> AttackFn:
        _ATTACKS[name] = fn
        return fn

    return deco


def attack_entries() -> dict[str, AttackFn]:
    import_submodules("faultlab.workers.watermark.attacks")
    return dict(_ATTACKS)


def get_attack(name: str, field: str) -> AttackFn:
    entries = attack_entries()
    if name not in entries:
        raise SpecError(field, f"unknown attack {name!r}", sorted([*entries, CHAIN]))
    return entries[name]


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
    steps = (
        [(s.name, s.strength if s.strength is not None else strength, s.params) for s in attack.steps]
        if attack.name == CHAIN
        else [(attack.name, strength, attack.params)]
    )
    result = Attacked(copy.deepcopy(model))
    for name, value, params in steps:
        info = ATTACKS[name]
        step = get_attack(name, f"{ctx.field}.name")(
            result.model, float(value), info.params.model_validate(params), ctx
        )
        result = Attacked(step.model, compose(result.preprocess, step.preprocess))
    result.model.eval()
    return result


def weight_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensors of every convolution and linear layer (what compression touches)."""
    return [
        m.weight for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
    ]


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
    matched at ``temperature`` as in Hinton et al. 2015) when they are 2-D."""
    params = [p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    model.train(train_mode)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            out = model(x[idx])
            if targets.dim() == 2:
                t = max(temperature, 1e-6)
                loss = F.kl_div(
                    F.log_softmax(out / t, dim=1), targets[idx], reduction="batchmean"
                ) * t * t
            else:
                loss = F.cross_entropy(out, targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model
