"""The semi-supervised spectral-spatial GAN of Zhong et al. (2019).

Zhong, Li, Zhang, Zhang, "Generative adversarial networks and conditional random fields for
hyperspectral image classification", *IEEE Transactions on Cybernetics* 50(7), 2020
(arXiv:1905.04621): a spectral-spatial generator produces patches ``(1, B, P, P)`` from
noise; the discriminator (:class:`~.cnn3d.SpectralSpatialNet` with ``K + 1`` outputs, the
last for "generated") classifies real patches into the K classes and tells generated ones
apart, so the unlabelled pixels shape its features.

The loss is Salimans et al.'s ("Improved techniques for training GANs", NeurIPS 2016, §5).
With logits ``l(x) ∈ R^{K+1}``, ``p(y | x) = softmax(l(x))``:

    L_D = − E_{(x,y) labelled} log p(y | x)                                      (supervised)
          − E_{x unlabelled} log(1 − p(K+1 | x)) − E_{z} log p(K+1 | G(z))         (unsupervised)

with ``log(1 − p(K+1 | x)) = logsumexp(l_{1..K}) − logsumexp(l)``; the generator minimises
Salimans et al.'s feature matching, ``‖E f(x_unlabelled) − E f(G(z))‖²`` on the
discriminator's pooled features ``f``. A pixel's class is ``argmax_{k ≤ K} l_k(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.training.hyperspectral.cnn3d import OnStep, SpectralSpatialNet
from faultlab.workers.training.hyperspectral.patches import augment


class SpectralSpatialGenerator(nn.Module):
    """Noise ``z`` → patch ``(1, B, P, P)``.

    A linear layer makes a coarse volume ``(C, ⌈B/4⌉, P, P)``; it is upsampled along the
    bands to B, then a *spectral* convolution (``7 × 1 × 1``) shapes each pixel's spectrum
    and a *spatial* convolution (``1 × 3 × 3``) correlates neighbouring pixels; the output
    is linear (the data are standardised per band)."""

    def __init__(self, latent: int, bands: int, patch: int, width: int = 16) -> None:
        super().__init__()
        self.bands, self.patch, self.width = bands, patch, width
        self.coarse = -(-bands // 4)
        self.project = nn.Linear(latent, width * self.coarse * patch * patch)
        self.project_norm = nn.BatchNorm1d(width * self.coarse * patch * patch)
        self.spectral_conv = nn.Conv3d(width, width, (7, 1, 1), padding=(3, 0, 0))
        self.spectral_norm = nn.BatchNorm3d(width)
        self.spatial_conv = nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1))
        self.spatial_norm = nn.BatchNorm3d(width)
        self.out = nn.Conv3d(width, 1, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.project_norm(self.project(z)))
        x = x.view(-1, self.width, self.coarse, self.patch, self.patch)
        x = F.interpolate(x, size=(self.bands, self.patch, self.patch), mode="trilinear",
                          align_corners=False)
        x = F.relu(self.spectral_norm(self.spectral_conv(x)))
        x = F.relu(self.spatial_norm(self.spatial_conv(x)))
        return self.out(x)


def discriminator_loss(logits_lab: torch.Tensor, labels: torch.Tensor,
                       logits_unl: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Salimans et al. (2016) semi-supervised loss of a K+1-output discriminator."""
    k = logits_lab.size(1) - 1
    supervised = F.cross_entropy(logits_lab, labels)
    lse_unl = torch.logsumexp(logits_unl, dim=1)
    real = -(torch.logsumexp(logits_unl[:, :k], dim=1) - lse_unl).mean()
    fake = -(logits_fake[:, k] - torch.logsumexp(logits_fake, dim=1)).mean()
    return supervised + real + fake


@dataclass
class GanTraining:
    """The trained pair, and the last losses (for the cell's record)."""

    discriminator: SpectralSpatialNet
    generator: SpectralSpatialGenerator
    loss_d: float
    loss_g: float


def train_gan(labelled: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor,
              classes: int, *, width: int, epochs: int, lr: float, batch: int, latent: int,
              seed: int, on_step: OnStep | None = None) -> GanTraining:
    """``epochs`` alternating steps (one discriminator, one generator step) with Adam
    (β₁ = 0.5): every labelled patch and ``batch`` unlabelled and generated ones per step,
    a random square symmetry applied to the real patches; ``on_step`` gets ``L_D``. Trains on
    the patches' device: both networks are initialised on the CPU and moved; the picks,
    symmetries and noise ``z`` are drawn by a CPU generator and moved (the same on every
    device)."""
    torch.manual_seed(seed)
    gen, device = torch.Generator(device="cpu").manual_seed(seed), labelled.device
    bands, patch = labelled.shape[2], labelled.shape[3]
    disc = SpectralSpatialNet(classes + 1, width, discriminator=True).to(device)
    generator = SpectralSpatialGenerator(latent, bands, patch, width).to(device)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    loss_d = loss_g = torch.zeros((), device=device)
    for step in range(epochs):
        pick = torch.randint(len(unlabelled), (batch,), generator=gen, device="cpu")
        unl = augment(unlabelled[pick.to(device)], gen)
        z = torch.randn(batch, latent, generator=gen, device="cpu").to(device)
        fake = generator(z)
        opt_d.zero_grad()
        loss_d = discriminator_loss(disc(augment(labelled, gen)), labels, disc(unl),
                                    disc(fake.detach()))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        target = disc.features(unl).detach().mean(0)
        loss_g = ((disc.features(generator(z)).mean(0) - target) ** 2).mean()
        loss_g.backward()
        opt_g.step()
        if on_step is not None:
            on_step(step, float(loss_d.detach()))
    return GanTraining(disc.eval(), generator.eval(), float(loss_d.detach()),
                      float(loss_g.detach()))


__all__ = ["GanTraining", "SpectralSpatialGenerator", "discriminator_loss", "train_gan"]
