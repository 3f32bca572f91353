"""Loaders of the public hyperspectral scenes, when a user has the ``.mat`` files.

Nothing is downloaded: put the files (as distributed by the Grupo de Inteligencia
Computacional, Universidad del País Vasco, "Hyperspectral Remote Sensing Scenes") under
``$FAULTLAB_HOME/data/hyperspectral/`` (:func:`faultlab.paths.data_dir`); the folder comes
from the machine, never from a spec.

==================  =================================  ===========================
scene               files (``scipy.io.loadmat`` key)   shape
==================  =================================  ===========================
``indian_pines``    ``Indian_pines_corrected.mat``     145 × 145 × 200, 16 classes
                    (``indian_pines_corrected``),      (AVIRIS, water-absorption
                    ``Indian_pines_gt.mat``            bands removed)
                    (``indian_pines_gt``)
``pavia_university`` ``PaviaU.mat`` (``paviaU``),       610 × 340 × 103, 9 classes
                    ``PaviaU_gt.mat`` (``paviaU_gt``)  (ROSIS)
==================  =================================  ===========================

Ground-truth class 0 is "no label" (:data:`~.scene.UNLABELLED`); classes ``1..K`` become
``0..K-1``. A scene larger than ``max_pixels`` is refused (the dense CRF is O(N²)): crop
it with ``window`` (row, col, height, width).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faultlab.errors import SpecError
from faultlab.paths import data_dir
from faultlab.workers.training.hyperspectral.params import MAX_PIXELS
from faultlab.workers.training.hyperspectral.scene import UNLABELLED, HyperspectralScene


@dataclass(frozen=True)
class PublicScene:
    """Where one public scene lives: file names and ``loadmat`` keys."""

    cube_file: str
    cube_key: str
    gt_file: str
    gt_key: str
    class_names: tuple[str, ...]


PUBLIC_SCENES: dict[str, PublicScene] = {
    "indian_pines": PublicScene(
        "Indian_pines_corrected.mat", "indian_pines_corrected", "Indian_pines_gt.mat",
        "indian_pines_gt",
        ("alfalfa", "corn-notill", "corn-mintill", "corn", "grass-pasture", "grass-trees",
         "grass-pasture-mowed", "hay-windrowed", "oats", "soybean-notill", "soybean-mintill",
         "soybean-clean", "wheat", "woods", "buildings-grass-trees-drives",
         "stone-steel-towers")),
    "pavia_university": PublicScene(
        "PaviaU.mat", "paviaU", "PaviaU_gt.mat", "paviaU_gt",
        ("asphalt", "meadows", "gravel", "trees", "painted-metal-sheets", "bare-soil",
         "bitumen", "self-blocking-bricks", "shadows")),
}


def hyperspectral_dir() -> Path:
    """``$FAULTLAB_HOME/data/hyperspectral``."""
    return data_dir("hyperspectral")


def _read(path: Path, key: str, field: str) -> np.ndarray:
    from scipy.io import loadmat

    if not path.is_file():
        raise SpecError(field, f"{path.name} is not in {path.parent} (put the public .mat "
                        "files there; nothing is downloaded)")
    content = loadmat(str(path))
    if key not in content:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise SpecError(field, f"{path.name} has no variable {key!r}", keys)
    return np.asarray(content[key])


def load_public_scene(name: str, window: tuple[int, int, int, int] | None = None,
                      max_pixels: int = MAX_PIXELS,
                      field: str = "training.hyperspectral.source") -> HyperspectralScene:
    """The public scene ``name`` (a key of :data:`PUBLIC_SCENES`), optionally cropped."""
    if name not in PUBLIC_SCENES:
        raise SpecError(field, f"unknown public scene {name!r}", sorted(PUBLIC_SCENES))
    entry, root = PUBLIC_SCENES[name], hyperspectral_dir()
    cube = _read(root / entry.cube_file, entry.cube_key, field).astype(np.float32)
    gt = _read(root / entry.gt_file, entry.gt_key, field).astype(np.int64)
    if cube.ndim != 3 or gt.shape != cube.shape[:2]:
        raise SpecError(field, f"{name}: cube {cube.shape} and ground truth {gt.shape} "
                        "do not match")
    if window is not None:
        r, c, h, w = window
        cube, gt = cube[r:r + h, c:c + w], gt[r:r + h, c:c + w]
    if gt.size > max_pixels:
        raise SpecError(field, f"{name} has {gt.size} pixels, above {max_pixels} (the dense "
                        "CRF is quadratic in pixels); crop it with a window")
    labels = np.where(gt > 0, gt - 1, UNLABELLED).astype(np.int64)
    return HyperspectralScene(cube=np.ascontiguousarray(cube), labels=labels,
                              class_names=entry.class_names,
                              source=f"{name}:{window}")


__all__ = ["PUBLIC_SCENES", "PublicScene", "hyperspectral_dir", "load_public_scene"]
