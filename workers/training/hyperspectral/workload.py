"""The hyperspectral training workload's steps: load the scene, check, plan, train a cell, and
rebuild a finished cell as a model (``training:hsi``).

Cells are model (``cnn`` | ``gan`` | ``gan_crf``) × labels per class × seeds on one scene.
A trial is ``{"workload": "hyperspectral", "variant": {"name": <model>}, "recipe":
{"name": "labels<n>", "labels_per_class": n}, "dataset": <scene label>, "seed": s}`` —
``model: {from_campaign: ID, cell: {variant: gan, recipe: labels5, seed: 0}}`` selects one.
The registered class is :mod:`faultlab.workers.training.workloads.hyperspectral`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.spec import StrictModel
from faultlab.workers.training.device import checkpoint_bytes
from faultlab.workers.training.hyperspectral.cell import PreparedScene, run_cell
from faultlab.workers.training.hyperspectral.cnn3d import SpectralSpatialNet
from faultlab.workers.training.hyperspectral.loaders import load_public_scene
from faultlab.workers.training.hyperspectral.params import HyperspectralParams
from faultlab.workers.training.hyperspectral.scene import (
    HyperspectralScene,
    few_label_split,
    generate_scene,
)

FIELD = "training.hyperspectral"
LIVE_INTERVAL_SECONDS = 0.5


@dataclass
class HsiContext:
    """What every shard needs: the prepared scene, the section, intra-op threads."""

    prepared: PreparedScene
    params: HyperspectralParams
    threads: int = 1
    curve_points: int = 200


def scene_label(params: HyperspectralParams) -> str:
    """The ``dataset`` label of the cells: ``generated`` or the public scene's name."""
    return params.source


def load_scene(params: HyperspectralParams) -> HyperspectralScene:
    """The section's scene (generated, or a public one from the data folder)."""
    if params.source == "generated":
        return generate_scene(params.scene, params.scene_seed)
    return load_public_scene(params.source, params.window, field=f"{FIELD}.source")


def check_scene(scene: HyperspectralScene, params: HyperspectralParams) -> None:
    """Every ``labels_per_class`` fits every class, and ``components`` the bands (SpecError
    naming the field otherwise)."""
    bands = scene.cube.shape[-1]
    if params.components is not None and params.components > bands:
        raise SpecError(f"{FIELD}.components", f"{params.components} components is more "
                        f"than the scene's {bands} bands", f"3..{bands}")
    for n in params.labels_per_class:
        few_label_split(scene, n, 0, field=f"{FIELD}.labels_per_class")


def prepare_scene(params: HyperspectralParams) -> tuple[PreparedScene, dict[str, Any]]:
    """The prepared scene and the campaign's meta (digests, scene size)."""
    scene = load_scene(params)
    check_scene(scene, params)
    info = {"digest": scene.digest, "height": int(scene.labels.shape[0]),
            "width": int(scene.labels.shape[1]), "bands": int(scene.cube.shape[-1]),
            "classes": scene.num_classes, "class_sizes": scene.class_sizes().tolist(),
            "class_names": list(scene.class_names),
            "truth": scene.labels.ravel().tolist()}  # for the report's classification maps
    meta = {"model_digest": digest("training:untrained"), "dataset_digest": scene.digest,
            "datasets": {scene_label(params): info}}
    return PreparedScene.of(scene, params.patch, params.components), meta


def plan_cells(params: HyperspectralParams, base_seed: int, seeds: int,
               meta: dict[str, Any]) -> list[dict[str, Any]]:
    label = scene_label(params)
    return [{"workload": "hyperspectral", "dataset": label,
             "dataset_digest": meta["datasets"][label]["digest"],
             "variant": {"name": model, "width": params.width,
                         "classes": meta["datasets"][label]["classes"]},
             "recipe": {"name": f"labels{n}", "labels_per_class": n},
             "seed": base_seed + s}
            for model in params.models for n in params.labels_per_class
            for s in range(seeds)]


class _Curve:
    """Every step's loss, thinned to at most ``points`` kept points (plus the last), with
    live points sent at most every :data:`LIVE_INTERVAL_SECONDS`."""

    def __init__(self, epochs: int, points: int, on_point: Any) -> None:
        self.stride = max(1, epochs // points)
        self.last = epochs - 1
        self.on_point, self.start, self.sent = on_point, time.perf_counter(), -1e9
        self.steps: list[int] = []
        self.losses: list[float] = []

    def __call__(self, step: int, loss: float) -> None:
        if step % self.stride == 0 or step == self.last:
            self.steps.append(step)
            self.losses.append(loss)
        now = time.perf_counter()
        if self.on_point is not None and (now - self.sent >= LIVE_INTERVAL_SECONDS
                                          or step == self.last):
            self.sent = now
            self.on_point({"step": float(step), "loss": loss,
                           "wall_seconds": now - self.start})


def train_trial(ctx: HsiContext, trial: dict[str, Any], on_point: Any) -> dict[str, Any]:
    """One cell: its scores, curve, classification map and checkpoint (safetensors)."""
    curve = _Curve(ctx.params.epochs, ctx.curve_points, on_point)
    outcome = run_cell(ctx.prepared, ctx.params, trial["variant"]["name"],
                       int(trial["recipe"]["labels_per_class"]), int(trial["seed"]), curve)
    return {**outcome.result, "status": "completed", "test_acc": outcome.result["oa"],
            "steps": ctx.params.epochs, "final_loss": curve.losses[-1],
            "curve": {"step": curve.steps, "loss": curve.losses},
            "checkpoint": checkpoint_bytes(outcome.classifier)}


class HsiModelOptions(StrictModel):
    """``training:hsi`` options: the architecture of a finished cell."""

    classes: int = Field(ge=2, le=32)
    """Land-cover classes K (the model's outputs; a discriminator's K + 1st is dropped)."""
    width: int = Field(8, ge=2, le=256)
    """Channels of the spectral-spatial convolutions."""
    discriminator: bool = False
    """The GAN's discriminator (K + 1 outputs, no normalisation) rather than the CNN."""


def model_reference(trial: dict[str, Any]) -> dict[str, Any]:
    """The ``training:hsi`` model of a finished cell (``gan_crf``: its discriminator; the CRF
    refines a whole map, not one patch)."""
    return {"name": "training:hsi", "options": {
        "classes": int(trial["variant"]["classes"]), "width": int(trial["variant"]["width"]),
        "discriminator": trial["variant"]["name"] != "cnn"}}


def build_classifier(options: dict[str, Any], data: Any, field: str) -> nn.Module:
    """The untrained ``training:hsi`` architecture (its checkpoint is loaded after)."""
    from faultlab.registry import pydantic_error
    from faultlab.workers.zoo import ImageData

    try:
        arch = HsiModelOptions.model_validate(options)
    except ValidationError as exc:
        raise pydantic_error(exc, f"{field}.options") from None
    if data is not None and not isinstance(data, ImageData):
        raise SpecError(f"{field}.name", "a training:hsi model needs a patch dataset "
                        "(dataset: {name: hsi_patches, ...})")
    if data is not None and data.num_classes != arch.classes:
        raise SpecError(f"{field}.options.classes", f"the model has {arch.classes} classes, "
                        f"the dataset {data.num_classes}")
    outputs = arch.classes + 1 if arch.discriminator else arch.classes
    model = SpectralSpatialNet(outputs, arch.width, discriminator=arch.discriminator)
    if arch.discriminator:
        model.real_classes = arch.classes
    return model.eval()



__all__ = ["HsiContext", "HsiModelOptions", "build_classifier", "check_scene", "load_scene",
           "model_reference", "plan_cells", "prepare_scene", "scene_label", "train_trial"]
