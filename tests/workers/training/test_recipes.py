"""The recipe layer: MoEx's moment exchange (identity with itself as partner; the partner's
moments after the exchange; the hook fires once per exchanged batch, in training only),
mixup and CutMix targets, and the bounded params at the edge."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.training.recipes import Pipeline, soft_cross_entropy
from faultlab.workers.training.recipes.moex import exchange, moments


@pytest.mark.parametrize("norm", ["pono", "instance", "layer"])
def test_moex_with_itself_is_the_identity(norm: str) -> None:
    h = torch.randn(6, 5, 4, 4, dtype=torch.float64) * 3 + 1
    out = exchange(h, torch.arange(6), norm, epsilon=1e-5)
    assert torch.allclose(out, h, atol=1e-12)


@pytest.mark.parametrize("norm", ["pono", "instance", "layer"])
def test_moex_gives_the_partners_moments(norm: str) -> None:
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(8, 6, 5, 5, generator=gen, dtype=torch.float64) * torch.linspace(
        0.5, 4, 8, dtype=torch.float64)[:, None, None, None] + torch.arange(8)[:, None, None, None]
    perm = torch.randperm(8, generator=gen)
    out = exchange(h, perm, norm, epsilon=1e-12)
    mean, std = moments(h, norm, 1e-12)
    new_mean, new_std = moments(out, norm, 1e-12)
    assert torch.allclose(new_mean, mean[perm], atol=1e-9)
    assert torch.allclose(new_std, std[perm], atol=1e-9)
    assert not torch.allclose(out, h)  # the normalised shape is kept, the moments are not
    norm_in = (h - mean) / std
    norm_out = (out - new_mean) / new_std
    assert torch.allclose(norm_in, norm_out, atol=1e-9)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean(dim=(2, 3)))


def _moex(**params: Any) -> list[dict[str, Any]]:
    base = {"probability": 1.0, "lam": 0.7, "norm": "pono"}
    return [{"name": "moex", "params": {**base, **params}}]


def test_moex_hook_exchanges_once_per_batch_in_training_only() -> None:
    net = _Net()
    x, y = torch.rand(5, 3, 6, 6), torch.tensor([0, 1, 2, 0, 1])
    target = torch.nn.functional.one_hot(y, 3).float()
    rng = np.random.default_rng(0)
    with Pipeline(net, _moex(), "augment") as pipeline:
        state = pipeline.steps[0][2]
        xb, mixed = pipeline(x, target, rng)
        assert torch.equal(xb, x)  # MoEx works in feature space, not on the input
        perm = state.pending
        assert torch.allclose(mixed, 0.7 * target + 0.3 * target[perm])
        net.train()
        net(x)
        assert state.calls == [5] and state.pending is None
        net(x)  # no pending exchange: an ordinary forward
        assert state.calls == [5]
    # the loss is λ·CE(y_a) + (1 − λ)·CE(y_b)
    logits = torch.randn(5, 3)
    ce = torch.nn.functional.cross_entropy
    expected = 0.7 * ce(logits, y) + 0.3 * ce(logits, y[perm])
    assert torch.allclose(soft_cross_entropy(logits, mixed), expected, atol=1e-6)
    assert not net.bn._forward_pre_hooks  # the pipeline removed its hook


def test_moex_with_probability_zero_changes_nothing() -> None:
    net = _Net().train()
    x, target = torch.rand(4, 3, 6, 6), torch.eye(3)[[0, 1, 2, 0]]
    with Pipeline(net, _moex(probability=0.0), "augment") as pipeline:
        torch.manual_seed(0)
        _, out = pipeline(x, target, np.random.default_rng(1))
        assert torch.equal(out, target) and pipeline.steps[0][2].pending is None


def test_moex_needs_a_normalisation_layer() -> None:
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(SpecError) as info:
        Pipeline(plain, _moex(), "training.image.recipes.0.augment")
    assert info.value.field == "training.image.recipes.0.augment.0"
    with pytest.raises(SpecError) as info:
        Pipeline(_Net(), _moex(layer="conv"), "augment")
    assert info.value.field == "augment.0.params.layer" and "bn" in str(info.value.allowed)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixing_targets_stay_distributions(name: str) -> None:
    x, target = torch.rand(6, 3, 8, 8), torch.eye(3)[[0, 1, 2, 0, 1, 2]]
    with Pipeline(_Net(), [{"name": name, "params": {"probability": 1.0}}], "a") as pipeline:
        xb, mixed = pipeline(x, target, np.random.default_rng(3))
    assert xb.shape == x.shape and torch.allclose(mixed.sum(1), torch.ones(6))
    assert (mixed >= 0).all()


def _image_spec(**image: Any) -> dict[str, Any]:
    return {"kind": "training", "training": {"workload": "image", "image": image}}


@pytest.mark.parametrize(("image", "field"), [
    ({"recipes": [{"augment": [{"name": "moex", "params": {"probability": 1.5}}]}]},
     "training.image.recipes.0.augment.0.params.probability"),
    ({"recipes": [{"augment": [{"name": "moex", "params": {"lam": -0.1}}]}]},
     "training.image.recipes.0.augment.0.params.lam"),
    ({"recipes": [{"augment": [{"name": "moex", "params": {"norm": "batch"}}]}]},
     "training.image.recipes.0.augment.0.params.norm"),
    ({"recipes": [{"augment": [{"name": "mixup", "params": {"alpha": 0}}]}]},
     "training.image.recipes.0.augment.0.params.alpha"),
    ({"recipes": [{"augment": [{"name": "cutmix", "params": {"probability": -1}}]}]},
     "training.image.recipes.0.augment.0.params.probability"),
    ({"recipes": [{"augment": [{"name": "dropblock"}]}]},
     "training.image.recipes.0.augment.0.name"),
    ({"variants": {"inputs": [{"kind": "frequency", "channels": 0}]}},
     "training.image.variants.inputs.0.channels"),
    ({"variants": {"inputs": [{"kind": "frequency", "channels": 193}]}},
     "training.image.variants.inputs.0.channels"),
    ({"variants": {"inputs": [{"kind": "downsampled"}]}}, "training.image.variants.inputs.0"),
    ({"recipes": [{"epochs": 0}]}, "training.image.recipes.0.epochs"),
    ({"recipes": [{"name": "a"}, {"name": "a"}]}, "training.image"),
    ({"bogus": 1}, "training.image.bogus"),
])
def test_bad_image_params_name_the_field(image: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_image_spec(**image))
    assert info.value.field == field


def test_workload_names_and_sections_are_checked() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"kind": "training", "training": {"workload": "audio"}})
    assert info.value.field == "training.workload" and "image" in str(info.value.allowed)
    with pytest.raises(SpecError) as info:
        parse_spec({"kind": "training", "training": {"workload": "image", "variants": []}})
    assert info.value.field == "training.variants"
    with pytest.raises(SpecError) as info:
        parse_spec({"kind": "training", "training": {"image": {}}})
    assert info.value.field == "training.image"
    spec = parse_spec({"kind": "training", "training": {"workload": "image"}})
    assert spec.params.image["recipes"][0]["epochs"] == 10  # normalised, defaults filled
