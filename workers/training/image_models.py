"""The image workload's models: a zoo CNN behind an input adapter, one ``nn.Module`` that
takes the dataset's RGB images whatever the variant's input, so a trained cell is a model
every other campaign kind evaluates on the plain dataset.

* ``spatial`` — the CNN on the images;
* ``downsampled`` — antialiased bilinear resize to ``size``², then the CNN;
* ``frequency`` — :class:`~faultlab.workers.training.frequency.FrequencyFront` (YCbCr →
  8×8 block DCT → standardised channels → gate or the selected ``k``), then the CNN with its
  input convolution reading those channels (Xu et al., CVPR 2020: the network is kept, its
  first layer takes the frequency channels instead of the pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.training.frequency import BLOCK, CHANNELS, FrequencyFront
from faultlab.workers.zoo.options import TRAIN_FIELDS
from faultlab.workers.zoo.registry import MODELS


@dataclass(frozen=True)
class Shape:
    """What a zoo builder reads of its dataset: the input shape and the class count."""

    input_shape: tuple[int, ...]
    num_classes: int


class Resize(nn.Module):
    """Antialiased bilinear resize to ``size × size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                             align_corners=False, antialias=True)


class AdaptedCNN(nn.Module):
    """``net(front(x))``: the input adapter, then the zoo CNN."""

    def __init__(self, front: nn.Module, net: nn.Module) -> None:
        super().__init__()
        self.front = front
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(self.front(x))
        return out


def input_shape(variant: dict[str, Any], shape: tuple[int, ...], field: str
                ) -> tuple[int, int, int]:
    """The shape the CNN sees for images of ``shape`` (C×H×W)."""
    spec = variant["input"]
    c, h, w = (int(s) for s in shape)
    if spec["kind"] == "downsampled":
        return c, int(spec["size"]), int(spec["size"])
    if spec["kind"] == "frequency":
        if c != 3 or h % BLOCK or w % BLOCK:
            raise SpecError(f"{field}.kind", f"frequency input needs RGB images whose sides "
                            f"are multiples of {BLOCK}, got {c}×{h}×{w}")
        return int(spec["channels"]), h // BLOCK, w // BLOCK
    return c, h, w


def _cnn(variant: dict[str, Any], channels: int, hw: tuple[int, int], num_classes: int,
         field: str) -> nn.Module:
    name = variant["model"]
    entry = MODELS.get(name, f"{field}.name")
    if entry.impl.task != "image":
        raise SpecError(f"{field}.name", f"{name!r} is no image model",
                        sorted(n for n, e in MODELS.entries().items() if e.impl.task == "image"))
    options = dict(variant.get("model_options") or {})
    training = sorted(set(options) & set(TRAIN_FIELDS))
    if training:
        raise SpecError(f"{field}.options.{training[0]}", "is a zoo training option; the "
                        "recipe sets training")
    parsed = MODELS.parse_params(name, options, f"{field}.options").model_dump()
    arch = {k: v for k, v in parsed.items() if k not in TRAIN_FIELDS}
    return entry.impl.build(Shape((channels, *hw), num_classes), **arch)


def build_image_model(variant: dict[str, Any], shape: tuple[int, ...], num_classes: int,
                      field: str, *, training: bool = False) -> AdaptedCNN:
    """The untrained model of ``variant`` for images of ``shape``. ``training``: the model
    that starts a frequency cell with a gate (all 192 channels in; narrowed after the gate
    phase); otherwise the final architecture (the ``k`` selected channels in)."""
    spec = variant["input"]
    c, h, w = input_shape(variant, shape, f"{field}.input")
    front: nn.Module = nn.Identity()
    if spec["kind"] == "downsampled":
        front = Resize(int(spec["size"]))
    elif spec["kind"] == "frequency":
        gate = spec["selection"] == "gate"
        front = FrequencyFront(int(spec["channels"]), gate)
        if training and gate:
            c = CHANNELS
    return AdaptedCNN(front, _cnn(variant, c, (h, w), num_classes, field))


def input_values(variant: dict[str, Any], shape: tuple[int, ...]) -> int:
    """Values per image the network reads (pixels, or kept DCT coefficients)."""
    c, h, w = input_shape(variant, shape, "training.image.variants")
    return c * h * w


__all__ = ["AdaptedCNN", "Resize", "Shape", "build_image_model", "input_shape",
           "input_values"]
