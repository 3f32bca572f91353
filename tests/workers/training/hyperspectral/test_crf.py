"""The dense CRF: without pairwise terms it returns its input (hence the argmax); mean-field
updates never raise the free energy they minimise; a noisy map gets cleaner."""

from __future__ import annotations

import numpy as np
import torch

from faultlab.workers.training.hyperspectral import crf
from faultlab.workers.training.hyperspectral.params import CrfParams, SceneParams
from faultlab.workers.training.hyperspectral.scene import generate_scene


def _noisy_probabilities(labels: np.ndarray, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = 1.5 * np.eye(classes)[labels] + rng.normal(0.0, 1.0, (*labels.shape, classes))
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    scene = generate_scene(SceneParams(height=20, width=20, bands=30, classes=3), seed=2)
    return scene.cube, scene.labels


def test_zero_pairwise_weight_returns_the_input_argmax() -> None:
    cube, labels = _scene()
    probs = _noisy_probabilities(labels, 3, 0)
    out = crf.refine(probs, cube, CrfParams(spatial_weight=0.0, bilateral_weight=0.0))
    np.testing.assert_allclose(out, probs, atol=1e-5)
    assert (out.argmax(-1) == probs.argmax(-1)).all()


def test_mean_field_lowers_the_free_energy() -> None:
    cube, labels = _scene()
    probs = torch.from_numpy(_noisy_probabilities(labels, 3, 1).reshape(-1, 3))
    params = CrfParams(spatial_weight=3.0, bilateral_weight=5.0, theta_position=4.0)
    kernel = crf.DenseKernel(crf.positions(20, 20), crf.spectral_features(cube, 3), params)
    trace: list[float] = []
    crf.mean_field(probs, kernel, 8, trace)
    assert len(trace) == 9
    assert all(b <= a + 1e-3 for a, b in zip(trace, trace[1:], strict=False))
    assert trace[-1] < trace[0] - 1.0


def test_blocked_messages_equal_the_stored_kernel() -> None:
    cube, labels = _scene()
    params = CrfParams()
    pos, spec = crf.positions(20, 20), crf.spectral_features(cube, 3)
    stored = crf.DenseKernel(pos, spec, params)
    blocked = crf.DenseKernel(pos, spec, params, block=64)
    blocked.stored = None
    q = torch.rand(400, 3)
    torch.testing.assert_close(stored.matmul(q), blocked.matmul(q), rtol=1e-4, atol=1e-4)


def test_crf_cleans_a_noisy_map() -> None:
    cube, labels = _scene()
    probs = _noisy_probabilities(labels, 3, 2)
    out = crf.refine(probs, cube, CrfParams())
    before = np.mean(probs.argmax(-1) == labels)
    after = np.mean(out.argmax(-1) == labels)
    assert after > before + 0.05
