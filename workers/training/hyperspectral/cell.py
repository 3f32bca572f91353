"""One cell of a hyperspectral sweep: train a classifier on few labels, map the scene, score.

``cnn`` trains the 3-D CNN on the labelled patches only; ``gan`` trains the semi-supervised
GAN on the labelled patches and every other pixel's (unlabelled) patch, and classifies with
its discriminator; ``gan_crf`` trains the same GAN (same seed: the same weights) and refines
its probability map with the dense CRF. Each cell records OA, AA and κ on the test pixels
(every ground-truth pixel not labelled), the per-class accuracies and the classification map;
``gan_crf`` also records the figures before the CRF. A cell computes on the device of its
prepared scene's patches (:mod:`~faultlab.workers.training.device`): the split is drawn by
numpy and moved, the probability map comes back to the CPU for scoring and the CRF runs on
the device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from faultlab.workers.training.hyperspectral import crf
from faultlab.workers.training.hyperspectral.cnn3d import (
    OnStep,
    SpectralSpatialNet,
    class_probabilities,
    train_cnn,
)
from faultlab.workers.training.hyperspectral.gan import train_gan
from faultlab.workers.training.hyperspectral.metrics import map_metrics
from faultlab.workers.training.hyperspectral.params import HyperspectralParams
from faultlab.workers.training.hyperspectral.patches import extract_patches, scene_tensor
from faultlab.workers.training.hyperspectral.scene import (
    HyperspectralScene,
    few_label_split,
    standardised,
)


@dataclass
class PreparedScene:
    """A scene ready for training: the standardised cube as a (B, H, W) tensor and every
    pixel's patch."""

    scene: HyperspectralScene
    cube: torch.Tensor
    patches: torch.Tensor

    @classmethod
    def of(cls, scene: HyperspectralScene, patch: int,
           components: int | None = None) -> PreparedScene:
        cube = scene_tensor(reduced(scene.cube, components))
        pixels = torch.arange(scene.labels.size, device="cpu")  # prepared on the CPU
        return cls(scene, cube, extract_patches(cube, pixels, patch))


def reduced(cube: np.ndarray, components: int | None) -> np.ndarray:
    """The standardised cube, or its first ``components`` principal components (sklearn PCA
    of the standardised spectra, each component standardised), (H, W, c) float32."""
    data = standardised(cube)
    if components is None or components >= cube.shape[-1]:
        return data
    from sklearn.decomposition import PCA

    flat = data.reshape(-1, cube.shape[-1]).astype(np.float64)
    scores = PCA(n_components=components, svd_solver="full", random_state=0).fit_transform(flat)
    scores /= scores.std(0) + 1e-8
    return scores.reshape(*cube.shape[:2], components).astype(np.float32)


@dataclass
class CellOutcome:
    """What a cell produced: its record and the trained classifier (the checkpoint)."""

    result: dict[str, Any]
    classifier: SpectralSpatialNet


def _score(prepared: PreparedScene, probs: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    truth = prepared.scene.labels.ravel()[test]
    return map_metrics(truth, probs.argmax(1)[test], prepared.scene.num_classes)


def run_cell(prepared: PreparedScene, params: HyperspectralParams, model: str,
             labels_per_class: int, seed: int, on_step: OnStep | None = None) -> CellOutcome:
    """Train and score one (model, labels per class, seed) cell; ``on_step`` receives the
    training loss (the GAN's: the discriminator's) after every step."""
    scene, classes = prepared.scene, prepared.scene.num_classes
    split = few_label_split(scene, labels_per_class, seed)
    device = prepared.patches.device
    labelled = torch.from_numpy(split.labelled).to(device)
    x_lab = prepared.patches[labelled]
    y_lab = torch.from_numpy(scene.labels.ravel()[split.labelled]).to(device)
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    classifier: SpectralSpatialNet
    if model == "cnn":
        classifier = train_cnn(x_lab, y_lab, classes, width=params.width, epochs=params.epochs,
                               lr=params.lr, seed=seed, on_step=on_step)
    else:
        unlabelled = prepared.patches[torch.from_numpy(split.unlabelled).to(device)]
        gan = train_gan(x_lab, y_lab, unlabelled, classes,
                        width=params.width, epochs=params.epochs, lr=params.lr,
                        batch=params.batch, latent=params.latent, seed=seed, on_step=on_step)
        classifier = gan.discriminator
        extra = {"loss_d": gan.loss_d, "loss_g": gan.loss_g}
    train_seconds = time.perf_counter() - start
    probs = class_probabilities(classifier, prepared.patches, classes).cpu().numpy()
    if model == "gan_crf":
        before = _score(prepared, probs, split.test)
        extra.update({f"before_crf_{k}": before[k] for k in ("oa", "aa", "kappa")})
        start = time.perf_counter()
        height, width = scene.labels.shape
        probs = crf.refine(probs.reshape(height, width, classes), scene.cube,
                           params.crf, device).reshape(-1, classes)
        extra["crf_seconds"] = time.perf_counter() - start
    scores = _score(prepared, probs, split.test)
    result = {"status": "ok", **scores, **extra, "labelled": int(len(split.labelled)),
              "test_pixels": int(len(split.test)), "train_seconds": train_seconds,
              "parameters": sum(p.numel() for p in classifier.parameters()),
              "map": probs.argmax(1).astype(int).tolist()}
    return CellOutcome(result, classifier)


__all__ = ["CellOutcome", "PreparedScene", "run_cell"]
