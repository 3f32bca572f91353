"""``hsi_patches``: the pixels of a generated hyperspectral scene as patch volumes, the data a
``training:hsi`` model (a hyperspectral training cell) reads in other campaigns.

Each sample is the ``(1, components, patch, patch)`` volume the hyperspectral workload's
classifiers see (:mod:`faultlab.workers.training.hyperspectral`): the scene is regenerated
from ``scene`` and ``scene_seed`` exactly as the training campaign made it, so give the same
values as its ``training.hyperspectral`` section. The test split is ``max_pixels``
ground-truth pixels evenly strided over the scene, the train split the others (at most as
many). See docs/hyperspectral.md.
"""

from __future__ import annotations

from typing import Any

import torch

from faultlab.errors import SpecError
from faultlab.workers.zoo.registry import ImageData, register_dataset


@register_dataset("hsi_patches", task="image")
def load_hsi_patches(scene: dict[str, Any] | None = None, scene_seed: int = 0,
                     components: int | None = 24, patch: int = 5, max_pixels: int = 512,
                     seed: int = 0) -> ImageData:
    """Patches of a generated hyperspectral scene (the hyperspectral training workload's
    inputs); ``scene`` and ``scene_seed`` as in the training campaign's section."""
    from pydantic import ValidationError

    from faultlab.registry import pydantic_error
    from faultlab.workers.training.hyperspectral.cell import PreparedScene
    from faultlab.workers.training.hyperspectral.params import HyperspectralParams
    from faultlab.workers.training.hyperspectral.scene import generate_scene

    if not 1 <= max_pixels <= 40_000:
        raise SpecError("dataset.options.max_pixels", f"must be in [1, 40000], got {max_pixels}")
    try:
        params = HyperspectralParams.model_validate(
            {"scene": scene or {}, "scene_seed": scene_seed, "components": components,
             "patch": patch})
    except ValidationError as exc:
        raise pydantic_error(exc, "dataset.options") from None
    prepared = PreparedScene.of(generate_scene(params.scene, params.scene_seed), params.patch,
                                params.components)
    labels = torch.from_numpy(prepared.scene.labels.ravel())
    known = torch.nonzero(labels >= 0).flatten()
    stride = max(1, len(known) // max_pixels)
    test = known[::stride][:max_pixels]
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[test] = False
    train = torch.nonzero(mask & (labels >= 0)).flatten()[:max_pixels]
    return ImageData("hsi_patches", prepared.patches[train], labels[train],
                     prepared.patches[test], labels[test], prepared.scene.num_classes)


__all__ = ["load_hsi_patches"]
