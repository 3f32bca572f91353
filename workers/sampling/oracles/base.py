"""What every pseudo-oracle sees, the representation hook, and the oracle registry.

A pseudo-oracle is ``score(ctx: ScoringContext) -> OracleScores``: a label-free verdict on
every pool input (``suspicion``: higher = more likely mispredicted; ``p_correct`` where the
oracle has a probability that the model is right). It is registered in :data:`ORACLES`
under the name of its file with its citation, and scored once per pool (the engine caches
the scores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.registry import Registry
from faultlab.spec import ModelSpec
from faultlab.workers.sampling.params import OracleSettings
from faultlab.workers.sampling.samplers.base import OracleScores
from faultlab.workers.zoo import ImageData


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The model's last ``nn.Linear`` (its classification head), by registration order."""
    found: tuple[str, nn.Linear] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = (name, module)
    if found is None:
        raise SpecError("sampling.oracle_settings.layer",
                        "the model has no nn.Linear head; name a representation layer")
    return found


@contextmanager
def capture(model: nn.Module, layer: str | None) -> Iterator[list[torch.Tensor]]:
    """Collects, per forward call, the output of module ``layer`` (flattened), or the input of
    the last linear layer when ``layer`` is None (the penultimate features)."""
    store: list[torch.Tensor] = []
    if layer is None:
        _, head = last_linear(model)

        def pre_hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            store.append(args[0].detach().flatten(1).cpu())  # numpy statistics follow

        handle = head.register_forward_pre_hook(pre_hook)
    else:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise SpecError("sampling.oracle_settings.layer", f"no module {layer!r}",
                            [n for n in modules if n])

        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            store.append(output.detach().flatten(1).cpu())

        handle = modules[layer].register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def representation(model: nn.Module, layer: str | None, x: torch.Tensor,
                   batch_size: int = 1024) -> torch.Tensor:
    """Activations of ``layer`` (default: penultimate features) for inputs ``x``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, layer) as store:
            for i in range(0, len(x), batch_size):
                model(x[i : i + batch_size])
    finally:
        model.train(was_training)
    return torch.cat(store)


@dataclass
class ScoringContext:
    """Everything a pseudo-oracle may use; never the pool's labels."""

    model: nn.Module
    x_pool: torch.Tensor
    logits: torch.Tensor
    """The model's logits on the pool."""
    train: ImageData
    """The data the model was trained on (``x_train``, ``y_train``)."""
    model_spec: ModelSpec
    settings: OracleSettings
    seed: int
    _cache: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(1)

    def representation(self, which: Literal["pool", "train"]) -> torch.Tensor:
        """Representation-layer activations of the pool or the training inputs (memoised)."""
        if which not in self._cache:
            x = self.x_pool if which == "pool" else self.train.x_train
            self._cache[which] = representation(self.model, self.settings.layer, x)
        return self._cache[which]


OracleFn = Callable[[ScoringContext], OracleScores]

#: Every pseudo-oracle, registered by the name of its file with its citation (their settings
#: are the campaign's :class:`~faultlab.workers.sampling.params.OracleSettings`).
ORACLES: Registry[OracleFn] = Registry(
    "pseudo-oracle", "faultlab.workers.sampling.oracles", "sampling.oracles"
)
