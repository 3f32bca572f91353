"""The 3-D CNN and the GAN: output shapes (K + 1 for the discriminator), named spectral and
spatial layers, Salimans et al.'s loss, and short trainings that learn."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from faultlab.workers.training.hyperspectral.cnn3d import (
    SPATIAL_LAYERS,
    SPECTRAL_LAYERS,
    SpectralSpatialNet,
    train_cnn,
)
from faultlab.workers.training.hyperspectral.gan import (
    SpectralSpatialGenerator,
    discriminator_loss,
    train_gan,
)
from faultlab.workers.training.hyperspectral.patches import extract_patches


def test_discriminator_has_k_plus_one_outputs() -> None:
    x = torch.randn(5, 1, 24, 5, 5)
    assert SpectralSpatialNet(6, 8)(x).shape == (5, 6)
    disc = SpectralSpatialNet(7, 8, discriminator=True)
    assert disc(x).shape == (5, 7)
    disc.real_classes = 6
    assert disc(x).shape == (5, 6)


def test_layers_are_named_spectral_and_spatial() -> None:
    names = {n for n, m in SpectralSpatialNet(4, 8).named_modules()
             if isinstance(m, torch.nn.Conv3d)}
    assert names == set(SPECTRAL_LAYERS) | set(SPATIAL_LAYERS)
    spectral = SpectralSpatialNet(4, 8).spectral_conv1
    assert spectral.kernel_size[1:] == (1, 1)  # along the bands only
    assert SpectralSpatialNet(4, 8).spatial_conv1.kernel_size[0] == 1  # across pixels only


def test_generator_makes_patches() -> None:
    gen = SpectralSpatialGenerator(latent=16, bands=103, patch=5, width=4)
    assert gen(torch.randn(3, 16)).shape == (3, 1, 103, 5, 5)


def test_salimans_loss_terms() -> None:
    k = 3
    lab = torch.tensor([[5.0, 0.0, 0.0, -5.0]])
    unl = torch.tensor([[0.0, 0.0, 0.0, math.log(3.0)]])  # p(fake) = 1/2
    fake = torch.tensor([[0.0, 0.0, 0.0, math.log(3.0)]])
    loss = discriminator_loss(lab, torch.tensor([0]), unl, fake)
    expected = F.cross_entropy(lab, torch.tensor([0])) + 2 * math.log(2.0)
    assert abs(float(loss) - float(expected)) < 1e-5
    assert lab.size(1) == k + 1


def test_patches_are_centred_on_their_pixel() -> None:
    cube = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5)
    patches = extract_patches(cube, torch.tensor([0, 7, 19]), 3)
    assert patches.shape == (3, 1, 2, 3, 3)
    assert patches[1, 0, :, 1, 1].tolist() == cube[:, 1, 2].tolist()
    assert patches[0, 0, 0, 1, 1] == cube[0, 0, 0] and patches[0, 0, 0, 0, 0] == cube[0, 1, 1]


def _toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 12, 3, 3, generator=gen) * 0.3
    x[:, 0, :4] += (y == 0).float()[:, None, None, None]
    x[:, 0, 4:8] += (y == 1).float()[:, None, None, None]
    return x, y


def test_short_trainings_learn() -> None:
    x, y = _toy(30, 0)
    cnn = train_cnn(x, y, 3, width=4, epochs=60, lr=0.01, seed=0)
    assert (cnn(x).argmax(1) == y).float().mean() > 0.9
    unl, _ = _toy(60, 1)
    losses: list[float] = []
    gan = train_gan(x, y, unl, 3, width=4, epochs=30, lr=0.01, batch=16, latent=8, seed=0,
                    on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == 30 and losses[-1] < losses[0]
    assert gan.discriminator(x).shape == (30, 4)
