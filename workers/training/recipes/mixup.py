"""mixup (Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization",
ICLR 2018): ``x̃ = λ x_a + (1 − λ) x_b``, ``ỹ = λ y_a + (1 − λ) y_b``, ``λ ~ Beta(α, α)``,
partner ``b`` a random permutation of the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from faultlab.spec import StrictModel
from faultlab.workers.training.recipes.base import (
    AUGMENTATIONS,
    Augmentation,
    mix_targets,
    permutation,
)

if TYPE_CHECKING:
    import numpy as np
    import torch


class MixupParams(StrictModel):
    alpha: float = Field(1.0, gt=0.0, le=100.0)
    """Beta(α, α) concentration of λ (1: uniform)."""
    probability: float = Field(1.0, ge=0.0, le=1.0)
    """Chance a batch is mixed."""


class Mixup(Augmentation):
    """mixup: convex combinations of image pairs and of their labels."""

    def apply(self, x: torch.Tensor, target: torch.Tensor, params: Any, state: Any,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if rng.random() >= params.probability:
            return x, target
        lam = float(rng.beta(params.alpha, params.alpha))
        perm = permutation(len(x), rng, x.device)
        return lam * x + (1.0 - lam) * x[perm], mix_targets(target, perm, lam)


AUGMENTATIONS.register("mixup", params=MixupParams, citation=(
    "Zhang et al., ICLR 2018: x = λx_a + (1−λ)x_b, y = λy_a + (1−λ)y_b, λ~Beta(α,α)"))(Mixup())

__all__ = ["Mixup", "MixupParams"]
