"""Zhang, Gu, Jang, Wu, Stoecklin, Huang & Molloy, "Protecting intellectual property of deep
neural networks with watermarking" (AsiaCCS 2018).

Three kinds of trigger sets, all labelled with one target class:

* ``content`` — training images of a source class with a meaningful mark stamped on them (the
  paper writes "TEST"; here a fixed, seeded glyph block at the bottom of the image, at full
  intensity);
* ``noise`` — the same images with a fixed Gaussian noise pattern added;
* ``unrelated`` — images of another domain (the paper takes MNIST digits for CIFAR-10; here a
  different zoo dataset, resized and channel-matched).

A single target label is not independent of the triggers (an innocent model may send unrelated
images to one class), so the null of this scheme is estimated on null models: the ownership
test rejects when ``P[Binomial(n, p̂₀) ≥ m] ≤ α``, with ``p̂₀`` the one-sided Clopper-Pearson
upper bound of the null models' match rate (:mod:`faultlab.workers.watermark.verify`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from faultlab.errors import SpecError
from faultlab.spec import DatasetSpec
from faultlab.workers.watermark.catalog import SchemeParams
from faultlab.workers.watermark.schemes.base import SCHEMES, Scheme, SchemeContext, WatermarkKey
from faultlab.workers.zoo import ImageData, load_dataset


class ZhangParams(SchemeParams):
    """Zhang et al. 2018 ("Protecting intellectual property of deep neural networks with
    watermarking", AsiaCCS)."""

    kind: Literal["content", "noise", "unrelated"] = "content"
    """``content``: a stamped pattern on images of the source class; ``noise``: a fixed Gaussian
    noise pattern on them; ``unrelated``: images from another dataset."""
    source_class: int | None = Field(None, ge=0, le=100_000)
    """Class whose training images carry the content/noise mark (default: drawn from the seed)."""
    target_class: int | None = Field(None, ge=0, le=100_000)
    """The single label of every trigger (default: drawn from the seed, never the source)."""
    noise_std: float = Field(0.3, gt=0.0, le=2.0)
    """Standard deviation of the ``noise`` mark, in input units."""
    unrelated_dataset: str | None = Field(None, min_length=1, max_length=200)
    """Zoo dataset of the ``unrelated`` triggers (default: ``shapes32`` for ``digits``, else
    ``digits``), resized and channel-matched to the campaign's inputs."""


def unrelated_name(params: ZhangParams, data: ImageData) -> str:
    if params.unrelated_dataset:
        return params.unrelated_dataset
    return "shapes32" if data.name == "digits" else "digits"


def unrelated_images(name: str, shape: tuple[int, ...], field: str) -> torch.Tensor:
    """Every image of zoo dataset ``name``, resized to ``shape`` (C×H×W), scaled to [0, 1]."""
    other = load_dataset(DatasetSpec.model_validate({"name": name}), task="image")
    if not isinstance(other, ImageData):
        raise SpecError(field, f"dataset {name!r} is not an image dataset")
    x = torch.cat([other.x_train, other.x_test]).float()
    channels, height, width = shape
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True).expand(-1, channels, -1, -1)
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(
            x, size=(height, width), mode="bilinear", antialias=True, align_corners=False
        )
    low = x.flatten(1).min(1).values[:, None, None, None]
    high = x.flatten(1).max(1).values[:, None, None, None]
    return (x - low) / (high - low).clamp_min(1e-6)


@SCHEMES.register(
    "zhang",
    params=ZhangParams,
    citation="Zhang et al., AsiaCCS 2018: t_i = x_i ⊕ mark, y_i = target; estimated null",
)
class ZhangScheme(Scheme):
    """Content, noise or unrelated triggers, all with one target label."""

    def check(self, params: ZhangParams, data: ImageData, trigger_size: int, field: str) -> None:
        k = data.num_classes
        for name in ("source_class", "target_class"):
            value = getattr(params, name)
            if value is not None and value >= k:
                raise SpecError(f"{field}.params.{name}", f"class {value} does not exist", range(k))
        if params.source_class is not None and params.source_class == params.target_class:
            raise SpecError(f"{field}.params.target_class", "must differ from source_class")
        if params.kind == "unrelated":
            available = len(
                unrelated_images(
                    unrelated_name(params, data),
                    data.input_shape,
                    f"{field}.params.unrelated_dataset",
                )
            )
            where = f"the unrelated dataset {unrelated_name(params, data)!r}"
        else:
            counts = torch.bincount(data.y_train, minlength=k)
            available = int(
                counts[params.source_class] if params.source_class is not None else counts.min()
            )
            where = "the source class's training images"
        if trigger_size > available:
            raise SpecError(
                "watermark.trigger_size",
                f"{trigger_size} {params.kind} triggers need as many images; "
                f"{where} hold {available}",
            )

    def keygen(self, ctx: SchemeContext, params: ZhangParams) -> WatermarkKey:
        gen = ctx.generator(3)  # every draw on the CPU; carriers and marks meet on the device
        k, n = ctx.num_classes, ctx.trigger_size
        classes = torch.randperm(k, generator=gen, device="cpu")
        source = params.source_class if params.source_class is not None else int(classes[0])
        target = params.target_class
        if target is None:
            target = int(classes[1]) if int(classes[1]) != source else int(classes[0])
        low, high = ctx.data_range
        channels, height, width = ctx.data.input_shape
        carriers = None
        if params.kind == "unrelated":
            pool = unrelated_images(
                unrelated_name(params, ctx.data),
                ctx.data.input_shape,
                f"{ctx.field}.params.unrelated_dataset",
            )
            picked = pool[torch.randperm(len(pool), generator=gen, device="cpu")[:n]]
            triggers = (low + (high - low) * picked).to(ctx.device)
        else:
            ids = (ctx.data.y_train == source).nonzero().flatten()
            chosen = torch.randperm(len(ids), generator=gen, device="cpu")[:n]
            carriers = ctx.data.x_train[ids[chosen.to(ids.device)]]
            if params.kind == "content":
                mark_h, mark_w = max(2, height // 4), max(3, width // 2)
                glyph = torch.rand(mark_h, mark_w, generator=gen, device="cpu") < 0.5
                mask = torch.zeros(height, width, dtype=torch.bool, device="cpu")
                top, left = height - mark_h - max(0, height // 16), (width - mark_w) // 2
                mask[top : top + mark_h, left : left + mark_w] = glyph
                triggers = carriers.masked_fill(mask.to(carriers.device), high)
            else:
                noise = torch.randn(channels, height, width, generator=gen, device="cpu")
                noise = noise * params.noise_std
                triggers = (carriers + noise.to(carriers.device)).clamp(low, high)
        return WatermarkKey(
            scheme=ctx.scheme,
            triggers=triggers,
            labels=torch.full((len(triggers),), target, dtype=torch.int64, device=ctx.device),
            num_classes=k,
            num_outputs=k,
            null="estimated",
            carriers=carriers,
            info={"kind": params.kind, "source_class": source, "target_class": target},
        )
