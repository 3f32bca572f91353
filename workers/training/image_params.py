"""The ``training.image`` section: zoo CNNs on image datasets with training recipes.

Torch-free (the SDK validates specs). A cell is (model × input) variant × recipe × dataset
× seed. Recipes compose augmentations from :data:`~faultlab.workers.training.recipes.
AUGMENTATIONS` — MoEx (Li et al., CVPR 2021), mixup (Zhang et al., ICLR 2018), CutMix (Yun
et al., ICCV 2019) — and inputs are spatial (full size), spatially downsampled, or the
block-DCT frequency channels of Xu et al. (CVPR 2020) with a learned channel gate and static
top-k selection. See docs/recipes.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from faultlab.spec import StrictModel

Label = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:+-]+$")
FREQUENCY_CHANNELS = 192
"""8×8 block-DCT channels: 64 frequencies × (Y, Cb, Cr)."""


def _spec_field(field: str, problem: str, allowed: list[str] | None = None
                ) -> PydanticCustomError:
    """An error :func:`faultlab.spec.parse_spec` reports on ``<path>.<field>``."""
    ctx: dict[str, Any] = {"field": field, "problem": problem}
    if allowed is not None:
        ctx["expected"] = allowed
    return PydanticCustomError("spec_field", "{problem}", ctx)


class ImageModel(StrictModel):
    """A zoo image CNN (``faultlab zoo``) and its architecture options."""

    name: str = Field("resnet_small", min_length=1, max_length=100)
    """Zoo image model (``resnet_small``, ``resnet18``, ``mobilenet_v2``, ``digits_cnn``);
    MoEx needs one with a normalisation layer."""
    options: dict[str, Any] = Field(default_factory=dict, max_length=16)
    """Its architecture options (``width``, ``blocks`` …; bounded by the zoo)."""
    label: str | None = Label
    """Name in the variant labels (default: the zoo name)."""


class ImageInput(StrictModel):
    """What the network sees.

    * ``spatial`` — the images as they are (the full-size baseline);
    * ``downsampled`` — bilinearly (antialiased) resized to ``size`` × ``size``;
    * ``frequency`` — RGB → YCbCr → 8×8 block DCT (orthonormal) → 192 channels at 1/8 of
      the resolution (Xu et al., CVPR 2020); a gate per channel is learned for the first
      ``gate_fraction`` of the epochs, then the ``channels`` best are kept (static
      selection) for the rest of training and for inference. ``channels: 192`` with
      ``selection: all`` keeps every channel and learns no gate.
    """

    kind: Literal["spatial", "downsampled", "frequency"] = "spatial"
    size: int | None = Field(None, ge=4, le=512)
    """``downsampled``: the side length it resizes to."""
    channels: int = Field(FREQUENCY_CHANNELS, ge=1, le=FREQUENCY_CHANNELS)
    """``frequency``: channels kept for inference, 1..192."""
    selection: Literal["gate", "all"] = "gate"
    """``frequency``: ``gate`` learns the per-channel gate and keeps the top ``channels``;
    ``all`` keeps every channel (needs ``channels: 192``) and learns no gate."""
    gate_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    """``frequency`` + ``gate``: the share of the epochs the gate is learned in."""
    gate_penalty: float = Field(0.01, ge=0.0, le=10.0)
    """``frequency`` + ``gate``: weight of the mean gate probability in the loss (pushes
    unneeded channels off)."""
    label: str | None = Label
    """Name in the report (default from the settings)."""

    @model_validator(mode="after")
    def _consistent(self) -> ImageInput:
        if self.kind == "downsampled" and self.size is None:
            raise ValueError("downsampled input needs size")
        if self.kind != "downsampled" and self.size is not None:
            raise ValueError("size is only for downsampled input")
        if self.kind == "frequency" and self.selection == "all" and (
                self.channels != FREQUENCY_CHANNELS):
            raise ValueError(f"selection all keeps all {FREQUENCY_CHANNELS} channels; use "
                             "selection gate to keep fewer")
        return self

    def resolved_label(self) -> str:
        if self.label:
            return self.label
        if self.kind == "downsampled":
            return f"down{self.size}"
        if self.kind == "frequency":
            return f"freq{self.channels}" + ("" if self.selection == "gate" else "all")
        return "spatial"


class ImageVariants(StrictModel):
    """Every model × every input is one variant."""

    models: list[ImageModel] = Field(
        default_factory=lambda: [ImageModel.model_validate({})], min_length=1, max_length=16)
    inputs: list[ImageInput] = Field(
        default_factory=lambda: [ImageInput.model_validate({})], min_length=1, max_length=16)


class Augment(StrictModel):
    """One augmentation of a recipe (registered name and its bounded params)."""

    name: str = Field(min_length=1, max_length=40)
    """``moex``, ``mixup`` or ``cutmix``."""
    params: dict[str, Any] = Field(default_factory=dict, max_length=16)
    """The augmentation's parameters (each bounded; see docs/recipes.md)."""

    @model_validator(mode="before")
    @classmethod
    def _params(cls, data: Any) -> Any:
        """Validates ``params`` with the augmentation's own model (errors name
        ``…augment.<i>.params.<parameter>``) and keeps them normalised."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return data
        from faultlab.workers.training.recipes import AUGMENTATIONS

        names = AUGMENTATIONS.names()
        if data["name"] not in names:
            raise _spec_field("name", f"unknown augmentation {data['name'][:40]!r}", names)
        model = AUGMENTATIONS.get(data["name"]).params
        try:
            params = model.model_validate(data.get("params") or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            problem = "unknown parameter" if err["type"] == "extra_forbidden" else (
                f"{str(err['msg']).removeprefix('Value error, ')}, got {err.get('input')!r}")
            raise _spec_field(f"params.{loc}" if loc else "params", problem,
                              sorted(model.model_fields)) from None
        return {**data, "params": params.model_dump(mode="json")}


class ImageRecipe(StrictModel):
    """How a cell trains: mini-batch SGD/Adam on the train split, plus augmentations."""

    name: str | None = Label
    """Cell label (default: ``baseline`` or the augmentations' names joined by ``+``)."""
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """SGD momentum."""
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0)
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(64, ge=2, le=4096)
    schedule: Literal["constant", "cosine", "step"] = "cosine"
    augment: list[Augment] = Field(default_factory=list, max_length=4)
    """Augmentations applied to every batch, in order (each with its own probability)."""

    @field_validator("augment")
    @classmethod
    def _once(cls, v: list[Augment]) -> list[Augment]:
        names = [a.name for a in v]
        if len(set(names)) != len(names):
            raise ValueError(f"each augmentation at most once, got {names}")
        return v

    def label(self) -> str:
        if self.name:
            return self.name
        return "+".join(a.name for a in self.augment) or "baseline"


class ImageDataset(StrictModel):
    """A zoo image dataset of the sweep (``shapes32``; ``cifar10`` when a copy is present)."""

    name: str = Field("shapes32", min_length=1, max_length=200)
    options: dict[str, Any] = Field(default_factory=dict, max_length=16)
    label: str | None = Label
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Share of the train split held out (per seed) as the validation set."""

    def resolved_label(self) -> str:
        return self.label or self.name


class ImageParams(StrictModel):
    """The ``training.image`` section."""

    variants: ImageVariants = Field(default_factory=lambda: ImageVariants.model_validate({}))
    recipes: list[ImageRecipe] = Field(
        default_factory=lambda: [ImageRecipe.model_validate({})], min_length=1, max_length=32)
    datasets: list[ImageDataset] = Field(
        default_factory=lambda: [ImageDataset.model_validate({})], min_length=1, max_length=8)
    baseline_recipe: str | None = Field(None, max_length=100)
    """The recipe the others are compared with (default: the first)."""
    baseline_variant: str | None = Field(None, max_length=100)
    """The variant the others are compared with (default: the first)."""
    eval_batch_size: int = Field(512, ge=1, le=65_536)

    @model_validator(mode="after")
    def _unique(self) -> ImageParams:
        for what, labels in (("recipes", [r.label() for r in self.recipes]),
                             ("datasets", [d.resolved_label() for d in self.datasets]),
                             ("variants", variant_names(self))):
            if len(set(labels)) != len(labels):
                raise ValueError(f"{what} labels must be unique (set label:/name:), got "
                                 f"{labels}")
        if self.baseline_recipe and self.baseline_recipe not in [r.label() for r in
                                                                 self.recipes]:
            raise ValueError(f"baseline_recipe {self.baseline_recipe!r} is no recipe label")
        if self.baseline_variant and self.baseline_variant not in variant_names(self):
            raise ValueError(f"baseline_variant {self.baseline_variant!r} is no variant")
        return self

    def all_variants(self) -> list[dict[str, Any]]:
        """``{"name", "model", "model_options", "input"}`` per model × input."""
        return [{"name": f"{m.label or m.name}-{i.resolved_label()}", "model": m.name,
                 "model_options": dict(m.options), "input": i.model_dump(mode="json")}
                for m in self.variants.models for i in self.variants.inputs]


def variant_names(params: ImageParams) -> list[str]:
    return [f"{m.label or m.name}-{i.resolved_label()}" for m in params.variants.models
            for i in params.variants.inputs]


__all__ = ["FREQUENCY_CHANNELS", "Augment", "ImageDataset", "ImageInput", "ImageModel",
           "ImageParams", "ImageRecipe", "ImageVariants", "variant_names"]
