"""CutMix (Yun, Han, Oh, Chun, Choe, Yoo, "CutMix: Regularization Strategy to Train Strong
Classifiers with Localizable Features", ICCV 2019): paste a box of the partner image,
``x̃ = M ⊙ x_a + (1 − M) ⊙ x_b``, box of side ``√(1 − λ)`` times the image's at a uniform
centre (clipped), ``λ ~ Beta(α, α)`` corrected to the pasted area, ``ỹ = λ y_a + (1 − λ) y_b``."""

from __future__ import annotations

import math
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


class CutMixParams(StrictModel):
    alpha: float = Field(1.0, gt=0.0, le=100.0)
    """Beta(α, α) concentration of λ."""
    probability: float = Field(0.5, ge=0.0, le=1.0)
    """Chance a batch is mixed (0.5 as in the paper's CIFAR runs)."""


def box(height: int, width: int, lam: float, rng: np.random.Generator
        ) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of a box of area ≈ ``(1 − λ)·H·W`` (clipped)."""
    ratio = math.sqrt(1.0 - lam)
    ch, cw = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    return (max(cy - ch // 2, 0), min(cy + ch // 2, height), max(cx - cw // 2, 0),
            min(cx + cw // 2, width))


class CutMix(Augmentation):
    """CutMix: a box of the partner image pasted in, labels mixed by area."""

    def apply(self, x: torch.Tensor, target: torch.Tensor, params: Any, state: Any,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if rng.random() >= params.probability:
            return x, target
        lam = float(rng.beta(params.alpha, params.alpha))
        perm = permutation(len(x), rng, x.device)
        height, width = x.shape[-2:]
        top, bottom, left, right = box(height, width, lam, rng)
        out = x.clone()
        out[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
        area = (bottom - top) * (right - left) / float(height * width)
        return out, mix_targets(target, perm, 1.0 - area)


AUGMENTATIONS.register("cutmix", params=CutMixParams, citation=(
    "Yun et al., ICCV 2019: x = M⊙x_a + (1−M)⊙x_b, y = λy_a + (1−λ)y_b, λ = 1 − box area"))(
    CutMix())

__all__ = ["CutMix", "CutMixParams", "box"]
