"""The recipe layer of the image workload: augmentations applied to every training batch.

An augmentation is one module of this package registered with :data:`AUGMENTATIONS`
(its bounded params model, its citation). During training each cell calls
:meth:`Augmentation.setup` once (e.g. MoEx installs its hook on a normalisation layer) and
:meth:`Augmentation.apply` per batch on ``(x, target)``, where ``target`` is a soft label
matrix (one-hot rows to start with). Label-mixing augmentations mix the targets, and the
loss is the soft cross-entropy ``−Σ_c t_c log softmax(z)_c``, which for
``t = λ e_a + (1 − λ) e_b`` is exactly ``λ·CE(y_a) + (1 − λ)·CE(y_b)``. Augmentations
compose in the order a recipe lists them.

Torch-free at import (the spec parser reads the params models); torch is imported inside
the functions.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from faultlab.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn


class Augmentation(abc.ABC):
    """One batch augmentation (see the module docstring)."""

    def setup(self, model: nn.Module, params: Any, field: str) -> Any:
        """Per-cell state (hooks on ``model``); ``None`` by default."""
        return None

    def teardown(self, state: Any) -> None:  # noqa: B027 - optional hook
        """Removes what :meth:`setup` installed (nothing by default)."""

    @abc.abstractmethod
    def apply(self, x: torch.Tensor, target: torch.Tensor, params: Any, state: Any,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The augmented batch and its (soft) targets."""


AUGMENTATIONS: Registry[Augmentation] = Registry(
    "augmentation", "faultlab.workers.training.recipes", "augment")
"""Every augmentation of the recipe layer, by name."""


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean_i −Σ_c t_ic log softmax(z_i)_c`` (the mixed-label loss)."""
    import torch.nn.functional as F

    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def mix_targets(target: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """``λ t + (1 − λ) t[perm]``."""
    return lam * target + (1.0 - lam) * target[perm]


def permutation(n: int, rng: np.random.Generator, device: torch.device | None = None
                ) -> torch.Tensor:
    """A random partner index per sample (a permutation of ``0..n-1``), drawn by the cell's
    numpy generator (the same on every device) and put on ``device`` (the batch's)."""
    import torch

    return torch.from_numpy(rng.permutation(n)).to(device)


class Pipeline:
    """A recipe's augmentations, set up on one model (``with`` removes their hooks)."""

    def __init__(self, model: nn.Module, augment: list[dict[str, Any]], field: str) -> None:
        self.steps: list[tuple[Augmentation, BaseModel, Any]] = []
        for i, spec in enumerate(augment):
            method = AUGMENTATIONS.get(spec["name"], f"{field}.{i}.name")
            params = AUGMENTATIONS.parse_params(spec["name"], spec.get("params"),
                                                f"{field}.{i}.params")
            state = method.impl.setup(model, params, f"{field}.{i}.params")
            self.steps.append((method.impl, params, state))

    def __call__(self, x: torch.Tensor, target: torch.Tensor, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        for impl, params, state in self.steps:
            x, target = impl.apply(x, target, params, state, rng)
        return x, target

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        for impl, _, state in self.steps:
            impl.teardown(state)


__all__ = ["AUGMENTATIONS", "Augmentation", "Pipeline", "mix_targets", "permutation",
           "soft_cross_entropy"]
