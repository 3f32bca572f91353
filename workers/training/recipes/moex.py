"""MoEx — moment exchange (Li, Wu, Lim, Belongie, Weinberger, "On Feature Normalization and
Data Augmentation", CVPR 2021).

At a normalisation layer, the features ``h_a`` of a sample keep their normalised shape but
take the first and second moments of a partner ``b`` (a random permutation of the batch):

    h̃_a = σ_b · (h_a − μ_a) / σ_a + μ_b,

and the loss interpolates the two labels, ``λ·CE(f(h̃_a), y_a) + (1 − λ)·CE(f(h̃_a), y_b)``.
The moments are those of positional normalisation (PONO, the paper's choice: mean and
standard deviation across the channels at every position, ``dims = (C,)``); ``instance``
(per channel over the positions, ``dims = (H, W)``) and ``layer`` (over ``(C, H, W)``) are
the per-sample alternatives. Batch-norm moments are shared by every sample of a batch, so
exchanging them between samples is the identity: there is no ``batch`` variant.

The exchange happens on the input of the chosen normalisation module (``layer``; default
the model's first ``BatchNorm``/``GroupNorm``/``LayerNorm``/``InstanceNorm``) in training
mode only, for a batch with probability ``probability``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from faultlab.errors import SpecError
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
    from torch import nn

Moments = Literal["pono", "instance", "layer"]
DIMS: dict[str, tuple[int, ...]] = {"pono": (1,), "instance": (2, 3), "layer": (1, 2, 3)}


class MoExParams(StrictModel):
    probability: float = Field(0.5, ge=0.0, le=1.0)
    """Chance a batch has its moments exchanged."""
    lam: float = Field(0.9, ge=0.0, le=1.0)
    """λ, the weight of the sample's own label (1 − λ: the partner's)."""
    norm: Moments = "pono"
    """Which moments: ``pono`` (across channels per position), ``instance``, ``layer``."""
    layer: str | None = Field(None, min_length=1, max_length=200)
    """Module name of the normalisation layer (default: the first one)."""
    epsilon: float = Field(1e-5, gt=0.0, le=1.0)
    """Added to the variance before the square root."""


def moments(h: torch.Tensor, norm: str, epsilon: float = 1e-5
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``√(var + ε)`` of ``h`` (N×C×H×W) per sample over the
    dims of ``norm``, kept broadcastable."""
    dims = DIMS[norm]
    mean = h.mean(dim=dims, keepdim=True)
    var = h.var(dim=dims, keepdim=True, unbiased=False)
    return mean, (var + epsilon).sqrt()


def exchange(h: torch.Tensor, perm: torch.Tensor, norm: str = "pono",
             epsilon: float = 1e-5) -> torch.Tensor:
    """``σ_b (h_a − μ_a) / σ_a + μ_b`` with ``b = perm[a]`` (identity when ``perm[a] = a``)."""
    mean, std = moments(h, norm, epsilon)
    return (h - mean) / std * std[perm] + mean[perm]


def normalization_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's normalisation modules by name, in registration order."""
    from torch import nn

    kinds = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
             nn.modules.instancenorm._InstanceNorm)
    return {name: m for name, m in model.named_modules() if isinstance(m, kinds)}


@dataclass
class _Hook:
    norm: str
    epsilon: float
    handle: Any = None
    pending: torch.Tensor | None = None
    calls: list[int] = field(default_factory=list)

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> Any:
        if self.pending is None or not module.training:
            return None
        perm, self.pending = self.pending, None
        h = args[0]
        if h.dim() != 4:
            raise ValueError(f"MoEx needs N×C×H×W features, got shape {tuple(h.shape)}")
        self.calls.append(len(h))
        return (exchange(h, perm, self.norm, self.epsilon), *args[1:])


class MoEx(Augmentation):
    """MoEx: exchange feature moments between a sample and a partner, interpolate the loss."""

    def setup(self, model: nn.Module, params: Any, field: str) -> _Hook:
        layers = normalization_layers(model)
        if not layers:
            raise SpecError(field.rsplit(".", 1)[0], "MoEx needs a model with a "
                            "normalisation layer (e.g. resnet_small, resnet18)")
        name = params.layer or next(iter(layers))
        if name not in layers:
            raise SpecError(f"{field}.layer", f"is no normalisation layer of the model: "
                            f"{name[:60]!r}", list(layers)[:30])
        hook = _Hook(params.norm, params.epsilon)
        hook.handle = layers[name].register_forward_pre_hook(hook)
        return hook

    def teardown(self, state: Any) -> None:
        state.handle.remove()

    def apply(self, x: torch.Tensor, target: torch.Tensor, params: Any, state: Any,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        state.pending = None
        if rng.random() >= params.probability:
            return x, target
        perm = permutation(len(x), rng, x.device)
        state.pending = perm
        return x, mix_targets(target, perm, params.lam)


AUGMENTATIONS.register("moex", params=MoExParams, citation=(
    "Li et al., CVPR 2021: h_a <- σ_b (h_a − μ_a)/σ_a + μ_b; loss λ·CE(y_a) + (1−λ)·CE(y_b)"))(
    MoEx())

__all__ = ["DIMS", "MoEx", "MoExParams", "exchange", "moments", "normalization_layers"]
