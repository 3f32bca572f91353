"""Checks of an image sweep before any Ray work, and loading its datasets.

Errors name the spec field: ``training.image.datasets.<i>.name`` (not an image dataset,
with the allowed names), ``…datasets.<i>.options.<option>``, ``…variants.models.<j>.name``
/ ``.options.<option>``, ``…variants.inputs.<k>.kind`` (frequency input on images that are
not RGB with sides a multiple of 8), ``…recipes.<i>.augment.<j>.params.layer`` (MoEx on a
model without that normalisation layer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faultlab.errors import SpecError
from faultlab.workers.training.image_models import build_image_model, input_shape
from faultlab.workers.training.image_params import ImageDataset, ImageParams
from faultlab.workers.training.recipes import Pipeline
from faultlab.workers.training.workloads.base import load_training_dataset
from faultlab.workers.zoo import ImageData, dataset_entries
from faultlab.workers.zoo.registry import DATASETS

ShapeOf = Callable[[str, dict[str, Any]], "tuple[int, int, int] | None"]


def _check_inputs(params: ImageParams, shape: tuple[int, ...]) -> None:
    for k, spec in enumerate(params.variants.inputs):
        variant = {"input": spec.model_dump(mode="json")}
        input_shape(variant, shape, f"training.image.variants.inputs.{k}")


def check_sweep(params: ImageParams, shape_of: ShapeOf) -> None:
    """Every dataset, model, input and recipe of the sweep fits (see the module docstring)."""
    images = sorted(n for n, e in dataset_entries().items() if e.task == "image")
    shapes = []
    for i, entry in enumerate(params.datasets):
        if entry.name not in images:
            raise SpecError(f"training.image.datasets.{i}.name",
                            f"unknown image dataset {entry.name[:60]!r}", images)
        DATASETS.parse_params(entry.name, entry.options, f"training.image.datasets.{i}.options")
        shape = shape_of(entry.name, entry.options)
        if shape is not None:
            _check_inputs(params, shape)
            shapes.append(shape)
    spatial = {"kind": "spatial"}
    for j, model in enumerate(params.variants.models):
        variant = {"model": model.name, "model_options": model.options, "input": spatial}
        net = build_image_model(variant, shapes[0] if shapes else (3, 32, 32), 10,
                                f"training.image.variants.models.{j}")
        for i, recipe in enumerate(params.recipes):
            augment = [a.model_dump(mode="json") for a in recipe.augment]
            with Pipeline(net, augment, f"training.image.recipes.{i}.augment"):
                pass


def load_images(entry: ImageDataset, index: int, params: ImageParams) -> ImageData:
    """The dataset of ``entry``, checked against the sweep's inputs."""
    data: ImageData = load_training_dataset(entry.name, entry.options,
                                            f"training.image.datasets.{index}", "image",
                                            ImageData)
    _check_inputs(params, data.input_shape)
    return data


__all__ = ["check_sweep", "load_images"]
