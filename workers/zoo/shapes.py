"""``shapes32``: a generated colour-image dataset of geometric shapes and textures.

Made for analyses that need room in the frequency domain (the 8×8 digits have only 8×5
Fourier components): every image is ``3×size×size`` (default 32), values in [0, 1], and the
whole set is a deterministic function of its options, so every worker generates the same
tensors without a download.

Each class is one shape or texture drawn at a random position, scale, rotation and colour on
a random background, plus pixel noise; the textures keep their orientation (within a small
jitter) because orientation is what tells some of them apart.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from faultlab.errors import SpecError
from faultlab.workers.zoo.registry import ImageData, register_dataset

Grid = tuple[np.ndarray, np.ndarray]
#: A class renderer: (rotated grid u, v in [-1, 1], scale, rng) -> mask in [0, 1].
Renderer = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], np.ndarray]


def _disk(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return (u**2 + v**2 <= s**2).astype(np.float32)


def _square(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return ((np.abs(u) <= s * 0.85) & (np.abs(v) <= s * 0.85)).astype(np.float32)


def _triangle(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    inside = (v <= s * 0.6) & (v >= -s + 2.0 * np.abs(u) * 0.9)
    return inside.astype(np.float32)


def _ring(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    r = np.sqrt(u**2 + v**2)
    return ((r <= s) & (r >= s * 0.55)).astype(np.float32)


def _plus(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    arm = s * 0.3
    horizontal = (np.abs(v) <= arm) & (np.abs(u) <= s)
    vertical = (np.abs(u) <= arm) & (np.abs(v) <= s)
    return (horizontal | vertical).astype(np.float32)


def _bar(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return ((np.abs(u) <= s) & (np.abs(v) <= s * 0.22)).astype(np.float32)


def _stripes_horizontal(
    u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator
) -> np.ndarray:
    period = 0.25 + 0.25 * s
    return (np.sin(np.pi * v / period * 2.0) > 0).astype(np.float32)


def _stripes_vertical(
    u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator
) -> np.ndarray:
    period = 0.25 + 0.25 * s
    return (np.sin(np.pi * u / period * 2.0) > 0).astype(np.float32)


def _checker(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    period = 0.3 + 0.3 * s
    return ((np.floor(u / period) + np.floor(v / period)) % 2 == 0).astype(np.float32)


def _dots(u: np.ndarray, v: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    period = 0.35 + 0.3 * s
    du = (u / period) % 1.0 - 0.5
    dv = (v / period) % 1.0 - 0.5
    return (du**2 + dv**2 <= 0.09).astype(np.float32)


#: Class index -> (name, renderer, whether the class is a full-image texture).
CLASSES: list[tuple[str, Renderer, bool]] = [
    ("disk", _disk, False),
    ("square", _square, False),
    ("triangle", _triangle, False),
    ("ring", _ring, False),
    ("plus", _plus, False),
    ("bar", _bar, False),
    ("stripes_horizontal", _stripes_horizontal, True),
    ("stripes_vertical", _stripes_vertical, True),
    ("checker", _checker, True),
    ("dots", _dots, True),
]


def render_shapes(
    labels: np.ndarray, size: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """Images ``N×3×size×size`` in [0, 1] for the given class labels (one draw per image)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    out = np.empty((len(labels), 3, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        _, render, texture = CLASSES[int(label)]
        if texture:
            angle = rng.uniform(-0.17, 0.17)  # ±10°: orientation defines the class
            cx, cy = rng.uniform(-1.0, 1.0, size=2)
        else:
            angle = rng.uniform(-np.pi, np.pi)
            cx, cy = rng.uniform(-0.35, 0.35, size=2)
        scale = float(rng.uniform(0.35, 0.7))
        cos, sin = np.cos(angle), np.sin(angle)
        u = cos * (xx - cx) + sin * (yy - cy)
        v = -sin * (xx - cx) + cos * (yy - cy)
        mask = render(u, v, scale, rng)[None]
        background = rng.uniform(0.0, 0.45, size=(3, 1, 1)).astype(np.float32)
        foreground = rng.uniform(0.55, 1.0, size=(3, 1, 1)).astype(np.float32)
        if rng.random() < 0.5:  # dark shapes on light backgrounds too
            background, foreground = foreground, background
        image = background + (foreground - background) * mask
        image = image + rng.normal(0.0, noise, size=(3, size, size)).astype(np.float32)
        out[i] = np.clip(image, 0.0, 1.0)
    return out


@register_dataset("shapes32", task="image")
def load_shapes(
    num_per_class: int = 200,
    size: int = 32,
    num_classes: int = 10,
    noise: float = 0.08,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> ImageData:
    """Generated 3×32×32 colour images of geometric shapes and textures (10 classes: disk,
    square, triangle, ring, plus, bar, horizontal/vertical stripes, checker, dots) with
    random pose, colours and pixel noise; deterministic in its options."""
    if not 1 <= num_per_class <= 100_000:
        raise SpecError(
            "dataset.options.num_per_class", f"must be in [1, 100000], got {num_per_class!r}"
        )
    if not 8 <= size <= 512:
        raise SpecError("dataset.options.size", f"must be in [8, 512], got {size!r}")
    if not 2 <= num_classes <= len(CLASSES):
        raise SpecError(
            "dataset.options.num_classes", f"must be in [2, {len(CLASSES)}], got {num_classes!r}"
        )
    if not 0.0 <= noise <= 1.0:
        raise SpecError("dataset.options.noise", f"must be in [0, 1], got {noise!r}")
    if not 0.0 < test_fraction < 1.0:
        raise SpecError(
            "dataset.options.test_fraction",
            f"must lie strictly between 0 and 1, got {test_fraction!r}",
        )
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), num_per_class)
    rng.shuffle(labels)
    images = render_shapes(labels, size, noise, rng)
    num_test = max(num_classes, int(round(len(labels) * test_fraction)))
    if num_test >= len(labels):
        raise SpecError("dataset.options.num_per_class", "too few images for a train/test split")
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels.astype(np.int64))
    return ImageData(
        "shapes32", x[num_test:], y[num_test:], x[:num_test], y[:num_test], num_classes=num_classes
    )
