"""The generated scene's statistics are as specified (class proportions, bands, linear mixing
at boundaries), and few-label splits draw exactly what they are asked for or refuse."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from faultlab.errors import SpecError
from faultlab.workers.training.hyperspectral.params import SceneParams
from faultlab.workers.training.hyperspectral.scene import (
    few_label_split,
    generate_scene,
    mixed_mask,
)


@pytest.mark.parametrize("layout,tolerance", [("field", 0.01), ("voronoi", 0.03)])
def test_class_proportions_and_bands(layout: str, tolerance: float) -> None:
    params = SceneParams(height=64, width=64, bands=120, classes=5, layout=layout,
                         proportions=[4, 2, 2, 1, 1])
    scene = generate_scene(params, seed=3)
    assert scene.cube.shape == (64, 64, 120)
    assert scene.num_classes == 5
    shares = scene.class_sizes() / scene.labels.size
    assert np.max(np.abs(shares - np.array([0.4, 0.2, 0.2, 0.1, 0.1]))) <= tolerance


def test_boundaries_are_mixed_and_interiors_pure() -> None:
    params = SceneParams(height=40, width=40, bands=100, classes=4, mixing_width=1)
    scene = generate_scene(params, seed=0)
    assert scene.abundances is not None
    mixed = mixed_mask(scene.abundances)
    labels = scene.labels
    # A pixel with a 4-neighbour of another class is a boundary pixel: all of them mixed.
    differs = np.zeros_like(labels, dtype=bool)
    differs[1:] |= labels[1:] != labels[:-1]
    differs[:-1] |= labels[:-1] != labels[1:]
    differs[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    differs[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    assert differs.any() and mixed[differs].all()
    # Pixels further than the mixing width (Chebyshev) from every boundary stay pure.
    near = ndimage.binary_dilation(differs, structure=np.ones((3, 3)), iterations=1)
    assert not mixed[~near].any()
    assert 0.0 < mixed.mean() < 0.6
    np.testing.assert_allclose(scene.abundances.sum(-1), 1.0, atol=1e-5)


def test_spectra_are_linear_mixtures_of_the_endmembers() -> None:
    params = SceneParams(height=24, width=24, bands=100, classes=3, noise=0.0,
                         illumination=0.0, variability=0.0)
    scene = generate_scene(params, seed=1)
    assert scene.abundances is not None
    pure = ~mixed_mask(scene.abundances)
    ends = np.stack([scene.cube[pure & (scene.labels == k)][0] for k in range(3)])
    np.testing.assert_allclose(scene.cube, scene.abundances @ ends, atol=1e-4)
    # Smooth spectra: second differences are small next to the spectrum's range.
    assert np.abs(np.diff(ends, n=2, axis=1)).max() < 0.05 * np.ptp(ends)


def test_same_seed_same_scene() -> None:
    params = SceneParams(height=16, width=16, bands=50)
    assert generate_scene(params, 4).digest == generate_scene(params, 4).digest
    assert generate_scene(params, 4).digest != generate_scene(params, 5).digest


def test_few_label_split() -> None:
    scene = generate_scene(SceneParams(height=32, width=32, bands=20, classes=4), seed=0)
    split = few_label_split(scene, 10, seed=2)
    counts = np.bincount(scene.labels.ravel()[split.labelled], minlength=4)
    assert counts.tolist() == [10, 10, 10, 10]
    assert not set(split.labelled) & set(split.test)
    assert len(split.labelled) + len(split.test) == scene.labels.size
    assert len(split.unlabelled) == scene.labels.size - 40
    smallest = int(scene.class_sizes().min())
    with pytest.raises(SpecError) as err:
        few_label_split(scene, smallest + 1, seed=0)
    assert err.value.field == "training.hyperspectral.labels_per_class"
    assert "larger than class" in err.value.problem
