"""A generated hyperspectral scene, and the few-label splits of a scene.

The generator follows the linear mixing model of hyperspectral imaging (Keshava & Mustard,
"Spectral unmixing", *IEEE Signal Processing Magazine* 19(1), 2002): the reflectance of
pixel ``i`` in band ``b`` is

    x_ib = λ_i Σ_k a_ik (e_kb + δ_ikb) + ε_ib,   a_ik ≥ 0, Σ_k a_ik = 1,

with

* ``e_k`` — a smooth endmember spectrum per land-cover class: a shared base spectrum (a
  Gaussian-smoothed random walk plus absorption features) plus ``separation`` × a
  class-specific sum of Gaussian bumps over the wavelength axis;
* ``a_i`` — abundances: the fraction of each class in the pixel's ``(2r+1)²`` window of the
  class map (``r = mixing_width``), so pixels within ``r`` of a boundary are linear mixtures;
* the class map — ``field``: argmax over K Gaussian-smoothed white-noise fields plus
  per-class offsets fitted so the area fractions match ``proportions``; ``voronoi``: the
  Voronoi regions of random sites, assigned to classes greedily by area;
* ``δ_ik`` — within-class variability: a smooth random perturbation of scale
  ``variability``; ``λ_i`` — illumination, ``1 + illumination × g_i`` for a smooth
  unit-variance field ``g``; ``ε_ib ~ N(0, σ_b²)``, ``σ_b = noise × U(0.5, 1.5)`` per band.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same parameters and seed
give the same scene (and :attr:`HyperspectralScene.digest`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from faultlab.errors import SpecError
from faultlab.hashing import digest, sha256_hex
from faultlab.workers.training.hyperspectral.params import SceneParams

UNLABELLED = -1
"""Label of pixels without ground truth (the public scenes' class 0)."""


@dataclass(frozen=True)
class HyperspectralScene:
    """A cube with its ground truth.

    ``cube`` is (height, width, bands) float32, ``labels`` (height, width) int64 with
    classes ``0..K-1`` and :data:`UNLABELLED`; ``abundances`` (height, width, K) for
    generated scenes (None for public ones).
    """

    cube: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    abundances: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def digest(self) -> str:
        return digest({"cube": sha256_hex(self.cube.tobytes()), "labels":
                       sha256_hex(self.labels.tobytes()), "source": self.source})

    def class_sizes(self) -> np.ndarray:
        """Ground-truth pixels per class."""
        known = self.labels[self.labels != UNLABELLED]
        return np.bincount(known.ravel(), minlength=self.num_classes)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def _field_layout(rng: np.random.Generator, p: SceneParams) -> np.ndarray:
    """argmax_k (f_k + c_k) with offsets ``c`` fitted (multiplicative updates in log space)
    so that each class's area matches its configured fraction."""
    fields = np.stack([_smooth_field(rng, (p.height, p.width), p.smoothness)
                       for _ in range(p.classes)], axis=-1)
    target = np.asarray(p.class_fractions())
    offsets = np.zeros(p.classes)
    for _ in range(500):
        labels = np.argmax(fields + offsets, axis=-1)
        share = np.bincount(labels.ravel(), minlength=p.classes) / labels.size
        if np.max(np.abs(share - target)) < 0.005:
            break
        offsets += 0.5 * (np.log(target) - np.log(np.maximum(share, 0.5 / labels.size)))
    return np.argmax(fields + offsets, axis=-1)


def _voronoi_layout(rng: np.random.Generator, p: SceneParams) -> np.ndarray:
    """Voronoi regions of ``regions_per_class × K`` sites; the largest regions first, each
    goes to the class furthest below its configured area."""
    sites = rng.uniform([0, 0], [p.height, p.width], size=(p.regions_per_class * p.classes, 2))
    rows, cols = np.mgrid[0:p.height, 0:p.width]
    grid = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(float)
    nearest = np.argmin(((grid[:, None, :] - sites[None]) ** 2).sum(-1), axis=1)
    area = np.bincount(nearest, minlength=len(sites))
    deficit = np.asarray(p.class_fractions()) * nearest.size
    region_class = np.zeros(len(sites), dtype=np.int64)
    for site in np.argsort(-area, kind="stable"):
        k = int(np.argmax(deficit))
        region_class[site] = k
        deficit[k] -= area[site]
    return region_class[nearest].reshape(p.height, p.width)


def _endmembers(rng: np.random.Generator, p: SceneParams) -> np.ndarray:
    """(K, bands) smooth reflectance spectra in about [0.05, 0.95]."""
    wl = np.linspace(0.0, 1.0, p.bands)
    walk = ndimage.gaussian_filter1d(np.cumsum(rng.standard_normal(p.bands)), p.bands / 12)
    base = 0.45 + 0.15 * (walk - walk.mean()) / (walk.std() + 1e-12)
    for _ in range(3):  # absorption features shared by every class
        base -= 0.1 * np.exp(-((wl - rng.uniform(0.1, 0.9)) ** 2) / (2 * 0.03 ** 2))
    spectra = []
    for _ in range(p.classes):
        bumps = np.zeros(p.bands)
        for _ in range(int(rng.integers(3, 7))):
            centre, width = rng.uniform(0.0, 1.0), rng.uniform(0.03, 0.2)
            bumps += rng.uniform(-1.0, 1.0) * np.exp(-((wl - centre) ** 2) / (2 * width ** 2))
        spectra.append(base + 0.25 * p.separation * bumps)
    return np.clip(np.stack(spectra), 0.05, 0.95)


def abundances_of(class_map: np.ndarray, classes: int, mixing_width: int) -> np.ndarray:
    """(H, W, K): the fraction of each class in each pixel's (2r+1)² window (edges
    reflected); one-hot where the window holds a single class."""
    onehot = np.eye(classes)[class_map]
    if mixing_width == 0:
        return onehot
    size = (2 * mixing_width + 1, 2 * mixing_width + 1, 1)
    return ndimage.uniform_filter(onehot, size=size, mode="reflect")


def generate_scene(p: SceneParams, seed: int) -> HyperspectralScene:
    """The scene of ``p`` drawn with ``seed`` (see the module docstring for the model)."""
    rng = np.random.default_rng(seed)
    class_map = _field_layout(rng, p) if p.layout == "field" else _voronoi_layout(rng, p)
    ab = abundances_of(class_map, p.classes, p.mixing_width)
    ends = _endmembers(rng, p)
    shape = (p.height, p.width)
    pure = ab @ ends
    if p.variability > 0:
        # Smooth in space and wavelength: neighbouring pixels vary alike, spectra stay smooth.
        delta = ndimage.gaussian_filter(rng.standard_normal((*shape, p.bands)),
                                        (1.0, 1.0, p.bands / 20), mode="wrap")
        delta /= delta.std() + 1e-12
        pure = pure + 0.05 * p.variability * delta
    light = np.clip(1.0 + p.illumination * _smooth_field(rng, shape, 2 * p.smoothness), 0.1,
                    None)
    sigma = p.noise * rng.uniform(0.5, 1.5, size=p.bands)
    cube = light[..., None] * pure + rng.standard_normal((*shape, p.bands)) * sigma
    labels = class_map.astype(np.int64)  # a mixed pixel keeps its region's class
    return HyperspectralScene(cube=cube.astype(np.float32), labels=labels,
                              class_names=tuple(f"class{k}" for k in range(p.classes)),
                              source=f"generated:{digest(p.model_dump(mode='json'))}:{seed}",
                              abundances=ab.astype(np.float32))


def mixed_mask(abundances: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Pixels whose largest abundance is below 1: linear mixtures of several classes."""
    return np.asarray(abundances.max(axis=-1) < 1.0 - tol)


def standardised(cube: np.ndarray) -> np.ndarray:
    """Each band to zero mean and unit variance over the scene (float32)."""
    flat = cube.reshape(-1, cube.shape[-1]).astype(np.float64)
    out = (flat - flat.mean(0)) / (flat.std(0) + 1e-8)
    return out.reshape(cube.shape).astype(np.float32)


@dataclass(frozen=True)
class FewLabelSplit:
    """Flat pixel indices: ``labelled`` (trained on), ``test`` (every other ground-truth
    pixel) and ``unlabelled`` (every pixel but the labelled ones: the GAN's unlabelled data,
    transductively, as in Zhong et al.)."""

    labelled: np.ndarray
    test: np.ndarray
    unlabelled: np.ndarray


def few_label_split(scene: HyperspectralScene, per_class: int, seed: int,
                    field: str = "training.hyperspectral.labels_per_class") -> FewLabelSplit:
    """``per_class`` labelled pixels of every class, drawn with ``seed``; a class with fewer
    ground-truth pixels is refused (SpecError naming ``field``)."""
    sizes = scene.class_sizes()
    too_small = [(scene.class_names[k], int(n)) for k, n in enumerate(sizes) if n < per_class]
    if too_small:
        name, size = min(too_small, key=lambda t: t[1])
        raise SpecError(field, f"{per_class} labels per class is larger than class "
                        f"{name!r} ({size} pixels)", f"1..{int(sizes.min())}")
    rng = np.random.default_rng(seed)
    flat = scene.labels.ravel()
    labelled = np.concatenate([
        rng.choice(np.flatnonzero(flat == k), size=per_class, replace=False)
        for k in range(scene.num_classes)])
    labelled.sort()
    known = flat != UNLABELLED
    known[labelled] = False
    rest = np.ones(flat.size, dtype=bool)
    rest[labelled] = False
    return FewLabelSplit(labelled=labelled, test=np.flatnonzero(known),
                         unlabelled=np.flatnonzero(rest))


__all__ = ["FewLabelSplit", "HyperspectralScene", "UNLABELLED", "abundances_of",
           "few_label_split", "generate_scene", "mixed_mask", "standardised"]
