"""``image``: zoo CNNs trained on image datasets with recipes and input adapters.

Cells are (model × input) variants × recipes × datasets × seeds (``training.image``,
:mod:`~faultlab.workers.training.image_params`). Recipes compose the augmentations of
:mod:`~faultlab.workers.training.recipes` — MoEx (Li et al., CVPR 2021:
``h̃_a = σ_b (h_a − μ_a)/σ_a + μ_b``, loss ``λ·CE(y_a) + (1 − λ)·CE(y_b)``), mixup, CutMix;
inputs are spatial, downsampled, or the 192 block-DCT channels of Xu et al. (CVPR 2020)
with a learned gate and static top-k selection
(:mod:`~faultlab.workers.training.frequency`). A finished cell is the model
``training:image`` (the adapter and the CNN: it reads the dataset's RGB images). See
docs/recipes.md. Torch is imported inside the methods (the spec parser imports this module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError

from faultlab.errors import SpecError
from faultlab.spec import StrictModel
from faultlab.workers.training.image_params import ImageInput, ImageParams
from faultlab.workers.training.workloads.base import WORKLOADS, OnPoint, SweepWorkload

if TYPE_CHECKING:
    from torch import nn

    from faultlab.report import Report
    from faultlab.spec import CampaignSpec
    from faultlab.workers.engine import Engine, Prepared, TrialRecord
    from faultlab.workers.training.params import TrainingParams

KNOWN_SHAPES = {"cifar10": (3, 32, 32)}
"""Image shapes known without loading (``shapes32``: from its ``size`` option)."""


class ImageModelOptions(StrictModel):
    """``training:image`` options: a cell's variant without its name."""

    model: str = Field(min_length=1, max_length=100)
    model_options: dict[str, Any] = Field(default_factory=dict, max_length=16)
    input: ImageInput = Field(default_factory=lambda: ImageInput.model_validate({}))


@dataclass
class ImageContext:
    """The loaded datasets by label and the intra-op threads of a shard."""

    datasets: dict[str, Any]
    threads: int = 1


def _shape(name: str, options: dict[str, Any]) -> tuple[int, int, int] | None:
    if name == "shapes32":
        size = options.get("size", 32)
        return (3, size, size) if isinstance(size, int) else None
    return KNOWN_SHAPES.get(name)


class ImageWorkload(SweepWorkload):
    """Zoo CNNs with MoEx / mixup / CutMix recipes and spatial or frequency-domain input."""

    name = "image"
    params_type = ImageParams
    families = ("image",)

    def cells(self, params: TrainingParams) -> int:
        section = self.section(params)
        return (len(section.all_variants()) * len(section.recipes) * len(section.datasets)
                * params.seeds)

    def validate(self, spec: CampaignSpec, params: TrainingParams) -> None:
        from faultlab.workers.training.image_checks import check_sweep

        check_sweep(self.section(params), _shape)

    def prepare(self, spec: CampaignSpec, params: TrainingParams) -> Prepared:
        from faultlab.hashing import digest
        from faultlab.workers.engine import Prepared
        from faultlab.workers.training.image_checks import load_images

        section = self.section(params)
        datasets = {d.resolved_label(): load_images(d, i, section)
                    for i, d in enumerate(section.datasets)}
        info = {label: {"digest": d.digest, "train": len(d.x_train), "test": len(d.x_test),
                        "classes": d.num_classes, "shape": list(d.input_shape)}
                for label, d in datasets.items()}
        meta = {"model_digest": digest("training:untrained"),
                "dataset_digest": digest({k: v["digest"] for k, v in info.items()}),
                "datasets": info}
        return Prepared(ImageContext(datasets, max(1, int(spec.execution.num_cpus))), meta)

    def plan(self, spec: CampaignSpec, params: TrainingParams,
             meta: dict[str, Any]) -> list[dict[str, Any]]:
        section = self.section(params)
        trials = []
        for entry in section.datasets:
            label = entry.resolved_label()
            for recipe in section.recipes:
                recipe_dict = {**recipe.model_dump(mode="json"), "name": recipe.label()}
                for variant in section.all_variants():
                    trials += [{"workload": self.name, "dataset": label,
                                "dataset_digest": meta["datasets"][label]["digest"],
                                "variant": variant, "recipe": recipe_dict,
                                "seed": spec.seed + s, "val_fraction": entry.val_fraction,
                                "eval_batch_size": section.eval_batch_size}
                               for s in range(params.seeds)]
        return trials

    def train(self, context: Any, trial: dict[str, Any], on_point: OnPoint | None
              ) -> dict[str, Any]:
        from faultlab.workers.training.image_loop import train_image_cell

        return train_image_cell(context.datasets[trial["dataset"]], trial, on_point)

    def aggregate(self, engine: Engine[Any], spec: CampaignSpec, meta: dict[str, Any],
                  records: list[TrialRecord]) -> Report:
        from faultlab.workers.training.image_report import aggregate

        section = self.section(engine.params(spec))
        return aggregate(engine, spec, meta, records, section)

    def plots(self, report: Report) -> dict[str, Any]:
        from faultlab.workers.training.image_report import plots

        return plots(report)

    def reference(self, trial: dict[str, Any]) -> dict[str, Any]:
        v = trial["variant"]
        return {"name": "training:image", "options": {
            "model": v["model"], "model_options": v["model_options"], "input": v["input"]}}

    def build_model(self, family: str, options: dict[str, Any], data: Any, field: str
                    ) -> nn.Module:
        from faultlab.registry import pydantic_error
        from faultlab.workers.training.image_models import build_image_model
        from faultlab.workers.zoo import ImageData

        try:
            arch = ImageModelOptions.model_validate(options)
        except ValidationError as exc:
            raise pydantic_error(exc, f"{field}.options") from None
        if not isinstance(data, ImageData):
            raise SpecError(f"{field}.name", "a training:image model needs an image dataset")
        variant = arch.model_dump(mode="json")
        return build_image_model(variant, data.input_shape, data.num_classes,
                                 f"{field}.options")


WORKLOADS.register("image", params=ImageParams, citation=(
    "Li et al., CVPR 2021 (MoEx); Xu et al., CVPR 2020 (learning in the frequency domain)"))(
    ImageWorkload())

__all__ = ["ImageContext", "ImageModelOptions", "ImageWorkload"]
