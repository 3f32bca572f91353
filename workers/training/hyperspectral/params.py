"""Spec models of the hyperspectral workload (pydantic; no torch, no numpy: the SDK validates
them cheaply).

* :class:`SceneParams` — the generated scene (:mod:`.scene`): bands, classes, layout, mixing,
  noise, illumination.
* :class:`CrfParams` — the dense CRF refinement (:mod:`.crf`).
* :class:`HyperspectralParams` — the sweep: scene source × models × labels per class × seeds.

Every option is bounded here; what depends on the data (labels per class larger than a class)
is refused when the scene is built (:func:`faultlab.workers.training.hyperspectral.scene.
few_label_split`), before any training, with the field named.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from faultlab.spec import StrictModel

HsiModel = Literal["cnn", "gan", "gan_crf"]
Source = Literal["generated", "indian_pines", "pavia_university"]
Layout = Literal["field", "voronoi"]
ALL_MODELS: tuple[HsiModel, ...] = ("cnn", "gan", "gan_crf")

MAX_PIXELS = 40_000
"""Largest scene (height × width) a campaign classifies: the dense CRF is O(N²) per
iteration (:mod:`.crf`)."""


class SceneParams(StrictModel):
    """A generated hyperspectral scene (:func:`~.scene.generate_scene`)."""

    height: int = Field(48, ge=8, le=512)
    """Rows of the scene, 8..512."""
    width: int = Field(48, ge=8, le=512)
    """Columns of the scene, 8..512."""
    bands: int = Field(103, ge=3, le=1024)
    """Spectral bands, 3..1024 (Pavia University has 103, Indian Pines 200)."""
    classes: int = Field(6, ge=2, le=32)
    """Land-cover classes K, 2..32."""
    proportions: list[float] | None = Field(None, min_length=2, max_length=32)
    """Area fraction of each class (normalised to sum 1); default: equal."""
    layout: Layout = "field"
    """``field``: argmax of K smoothed Gaussian random fields, biased to the proportions;
    ``voronoi``: Voronoi regions of random sites, assigned to classes by area."""
    smoothness: float = Field(5.0, ge=1.0, le=64.0)
    """Correlation length of the random fields in pixels (larger: bigger regions)."""
    regions_per_class: int = Field(4, ge=1, le=64)
    """``voronoi``: sites per class."""
    mixing_width: int = Field(1, ge=0, le=8)
    """Half-width r of the linear mixing at boundaries: a pixel's abundances are the class
    fractions of its (2r+1)² window, so pixels within r of a boundary are mixed."""
    separation: float = Field(0.5, gt=0.0, le=1.0)
    """How far the class endmembers lie from a shared base spectrum (smaller: harder)."""
    variability: float = Field(0.15, ge=0.0, le=1.0)
    """Within-class spectral variability (smooth per-pixel perturbation of the endmember)."""
    noise: float = Field(0.03, ge=0.0, le=1.0)
    """Sensor noise: per-band Gaussian standard deviation ≈ ``noise`` × U(0.5, 1.5)."""
    illumination: float = Field(0.1, ge=0.0, le=0.9)
    """Standard deviation of a smooth multiplicative illumination field."""

    @model_validator(mode="after")
    def _proportions(self) -> SceneParams:
        if self.proportions is None:
            return self
        if len(self.proportions) != self.classes:
            raise ValueError(f"proportions needs one value per class ({self.classes}), "
                             f"got {len(self.proportions)}")
        if any(not math.isfinite(p) or p <= 0 for p in self.proportions):
            raise ValueError("proportions must be positive numbers")
        return self

    def class_fractions(self) -> list[float]:
        """The configured class proportions, summing to 1."""
        raw = self.proportions or [1.0] * self.classes
        total = sum(raw)
        return [p / total for p in raw]


class CrfParams(StrictModel):
    """Dense CRF refinement (Krähenbühl & Koltun, NeurIPS 2011) of the per-pixel class
    probabilities: Potts pairwise terms with a spatial and a spectral-bilateral kernel."""

    iterations: int = Field(10, ge=1, le=100)
    """Mean-field iterations."""
    spatial_weight: float = Field(1.0, ge=0.0, le=100.0)
    """w₁ of the spatial kernel ``exp(−|p_i − p_j|² / 2θ_γ²)``."""
    theta_spatial: float = Field(1.0, gt=0.0, le=100.0)
    """θ_γ, in pixels."""
    bilateral_weight: float = Field(1.0, ge=0.0, le=100.0)
    """w₂ of the bilateral kernel ``exp(−|p_i − p_j|²/2θ_α² − |s_i − s_j|²/2θ_β²)``."""
    theta_position: float = Field(3.0, gt=0.0, le=500.0)
    """θ_α, in pixels."""
    theta_spectral: float = Field(0.5, gt=0.0, le=100.0)
    """θ_β, on the spectral features (the first ``spectral_components`` principal components
    of the standardised spectra, each scaled to unit variance)."""
    spectral_components: int = Field(3, ge=1, le=64)
    """Principal components of the spectra used as the bilateral kernel's features."""


class HyperspectralParams(StrictModel):
    """The hyperspectral sweep: models × labels per class × seeds on one scene."""

    source: Source = "generated"
    """``generated`` (the scene below) or a public scene read from
    ``$FAULTLAB_HOME/data/hyperspectral`` (:mod:`.loaders`)."""
    scene: SceneParams = Field(default_factory=lambda: SceneParams.model_validate({}))
    """The generated scene (``source: generated``)."""
    scene_seed: int = Field(0, ge=0, le=2**31 - 1)
    """Seed of the generated scene (the same scene for every cell; the cells' own seeds
    draw the labelled pixels and initialise the networks)."""
    window: tuple[int, int, int, int] | None = None
    """A public scene's crop: (row, column, height, width)."""
    models: list[HsiModel] = Field(default_factory=lambda: list(ALL_MODELS), min_length=1,
                                   max_length=3)
    """``cnn``: the 3-D CNN baseline; ``gan``: the semi-supervised GAN's discriminator;
    ``gan_crf``: the GAN followed by the dense CRF."""
    labels_per_class: list[int] = Field(default_factory=lambda: [5, 10, 20], min_length=1,
                                        max_length=16)
    """Labelled pixels per class, each in 1..1000 (and at most the class's size)."""
    components: int | None = Field(24, ge=3, le=1024)
    """Principal components of the standardised spectra the classifiers see (the usual
    spectral reduction of 3-D CNN and GAN hyperspectral classifiers; it keeps the networks
    small enough for CPUs); ``null``: every band."""
    patch: int = Field(5, ge=1, le=15)
    """Side of the square patch around a pixel (odd, 1..15)."""
    width: int = Field(8, ge=2, le=256)
    """Channels of the spectral-spatial convolutions."""
    epochs: int = Field(200, ge=1, le=20_000)
    """Gradient steps of each classifier (CNN: on the labelled pixels; GAN: one
    discriminator and one generator step each)."""
    lr: float = Field(2e-3, gt=0.0, le=1.0)
    """Adam learning rate."""
    batch: int = Field(32, ge=4, le=4096)
    """Unlabelled and generated patches per GAN step."""
    latent: int = Field(32, ge=2, le=1024)
    """Dimension of the generator's noise input."""
    crf: CrfParams = Field(default_factory=lambda: CrfParams.model_validate({}))
    """The CRF of ``gan_crf``."""

    @field_validator("labels_per_class")
    @classmethod
    def _labels(cls, v: list[int]) -> list[int]:
        for n in v:
            if not 1 <= n <= 1000:
                raise ValueError(f"labels per class must lie in 1..1000, got {n!r}")
        return list(dict.fromkeys(v))

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[HsiModel]) -> list[HsiModel]:
        return list(dict.fromkeys(v))

    @field_validator("patch")
    @classmethod
    def _odd_patch(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"patch must be odd (a pixel at its centre), got {v}")
        return v

    @model_validator(mode="after")
    def _size(self) -> HyperspectralParams:
        if self.source == "generated" and self.scene.height * self.scene.width > MAX_PIXELS:
            raise ValueError(f"scene height × width must be at most {MAX_PIXELS} pixels")
        if self.window is not None:
            row, col, height, width = self.window
            if min(row, col) < 0 or min(height, width) < 8 or height * width > MAX_PIXELS:
                raise ValueError("window must be (row ≥ 0, column ≥ 0, height ≥ 8, width ≥ 8) "
                                 f"with height × width at most {MAX_PIXELS}")
        if self.components is not None and self.source == "generated" and (
                self.components > self.scene.bands):
            raise ValueError(f"components ({self.components}) must be at most the scene's "
                             f"bands ({self.scene.bands})")
        return self


__all__ = ["CrfParams", "HsiModel", "HyperspectralParams", "MAX_PIXELS", "SceneParams"]
