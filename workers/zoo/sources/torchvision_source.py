"""``torchvision:<arch>``: a torchvision architecture by name, built without pretrained weights.

``torchvision.models.get_model(arch, weights=None, **options)`` builds one of torchvision's
registered classification architectures (ResNet, He et al., CVPR 2016; VGG; MobileNet;
EfficientNet; ViT; ...). Nothing is downloaded (``weights=None``; trained weights come from the
spec's ``file``) and options are bounded scalars. torchvision is the optional extra
``faultlab[torchvision]``: where it does not import (its wheels may be built for another torch),
this source says so instead of failing later.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from faultlab.errors import SpecError
from faultlab.registry import pydantic_error
from faultlab.workers.zoo.sources.budget import bounded_build


class TorchvisionParams(BaseModel):
    """Keyword options of a ``torchvision:`` architecture (torchvision's own names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_classes: int | None = Field(None, ge=1, le=100_000)
    """Output classes (default: the dataset's)."""
    dropout: float | None = Field(None, ge=0.0, le=1.0)
    """Classifier dropout, for the architectures that take it."""
    width_mult: float | None = Field(None, gt=0.0, le=4.0)
    """Width multiplier (MobileNet)."""
    aux_logits: bool | None = None
    """Auxiliary classifiers (GoogLeNet, Inception)."""
    image_size: int | None = Field(None, ge=16, le=1024)
    """Input size (ViT)."""


def _torchvision_models() -> Any:
    try:
        return importlib.import_module("torchvision.models")
    except Exception as exc:  # ImportError, or the RuntimeError of a wheel built for other torch
        raise SpecError(
            "model.name", "torchvision: models need the optional extra faultlab[torchvision] "
            f"with a torchvision build matching this torch ({str(exc)[:100]}); pyg: models "
            "need no extra"
        ) from None


def build(arch: str, options: dict[str, Any], *, num_classes: int | None,
          field: str = "model") -> nn.Module:
    """``torchvision.models.get_model(arch, weights=None, **options)``, sized first."""
    models = _torchvision_models()
    names = sorted(models.list_models(module=models))
    if arch not in names:
        raise SpecError(f"{field}.name", f"unknown torchvision model {arch[:60]!r}",
                        [f"torchvision:{n}" for n in names])
    try:
        params = TorchvisionParams.model_validate(options)
    except ValidationError as exc:
        raise pydantic_error(exc, f"{field}.options") from None
    kwargs = params.model_dump(exclude_none=True)
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)

    def make() -> nn.Module:
        try:
            model: nn.Module = models.get_model(arch, weights=None, **kwargs)
        except TypeError as exc:  # an option the architecture does not take
            raise SpecError(f"{field}.options", str(exc)[:200]) from None
        return model

    return bounded_build(make, f"{field}.options")
