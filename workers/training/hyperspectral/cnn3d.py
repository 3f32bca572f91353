"""The spectral-spatial 3-D CNN: the baseline classifier and the GAN's discriminator.

Input: a pixel's patch ``(1, B, P, P)`` (:mod:`.patches`). Two *spectral* convolutions
(kernels ``7 × 1 × 1``, stride 2 along the bands) learn spectral features pixel by pixel,
then two *spatial* convolutions (``1 × 3 × 3``) mix neighbouring pixels, and a linear
``classifier`` reads the features pooled to 4 spectral positions:

    spectral_conv1 → spectral_conv2 → spatial_conv1 → spatial_conv2 → pool → classifier

The split into spectral and spatial layers (named so; fault campaigns target them by name)
is that of spectral-spatial 3-D CNNs (Chen et al., *IEEE TGRS* 54(10), 2016) and of Zhong
et al.'s discriminator ("Generative adversarial networks and conditional random fields for
hyperspectral image classification", *IEEE Transactions on Cybernetics* 50(7), 2020;
arXiv:1905.04621). The baseline has batch normalisation and ReLU; the discriminator has no
normalisation (real, unlabelled and generated batches would share its statistics), leaky
ReLUs and dropout, as in Salimans et al. (2016)'s semi-supervised GAN, and ``K + 1``
outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.training.hyperspectral.patches import augment

SPECTRAL_LAYERS = ("spectral_conv1", "spectral_conv2")
SPATIAL_LAYERS = ("spatial_conv1", "spatial_conv2")
POOLED_BANDS = 4
OnStep = Callable[[int, float], None]
"""Receives (step, training loss) after every optimiser step."""


class SpectralSpatialNet(nn.Module):
    """Spectral-spatial 3-D CNN with ``outputs`` logits (K for a classifier, K + 1 for a
    discriminator)."""

    def __init__(self, outputs: int, width: int = 16, discriminator: bool = False,
                 norm: bool | None = None) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.spectral_conv1 = nn.Conv3d(1, width, (7, 1, 1), stride=(4, 1, 1),
                                        padding=(3, 0, 0))
        self.spectral_conv2 = nn.Conv3d(width, width, (5, 1, 1), stride=(2, 1, 1),
                                        padding=(2, 0, 0))
        self.spatial_conv1 = nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1))
        self.spatial_conv2 = nn.Conv3d(width, width, (1, 3, 3), padding=(0, 1, 1))
        with_norm = not discriminator if norm is None else norm
        make: Callable[[], nn.Module] = (
            (lambda: nn.BatchNorm3d(width)) if with_norm else nn.Identity)
        self.spectral_norm1, self.spectral_norm2 = make(), make()
        self.spatial_norm1, self.spatial_norm2 = make(), make()
        self.dropout = nn.Dropout(0.1 if discriminator else 0.0)
        self.pool = nn.AdaptiveAvgPool3d((POOLED_BANDS, 1, 1))
        self.classifier = nn.Linear(width * POOLED_BANDS, outputs)
        self.real_classes: int | None = None
        """When set (a discriminator used as a classifier), ``forward`` returns only the
        first ``real_classes`` logits."""

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) if self.discriminator else F.relu(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled spectral-spatial features (the input of ``classifier``)."""
        x = self._act(self.spectral_norm1(self.spectral_conv1(x)))
        x = self._act(self.spectral_norm2(self.spectral_conv2(x)))
        x = self._act(self.spatial_norm1(self.spatial_conv1(self.dropout(x))))
        x = self._act(self.spatial_norm2(self.spatial_conv2(x)))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.dropout(self.features(x)))
        return logits if self.real_classes is None else logits[:, :self.real_classes]


def class_probabilities(model: SpectralSpatialNet, patches: torch.Tensor, classes: int,
                        chunk: int = 512) -> torch.Tensor:
    """(n, K) class probabilities in eval mode; a discriminator's are the softmax of its
    first K logits, ``p(y | x, x real)``."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = torch.cat([torch.softmax(model(patches[i:i + chunk])[:, :classes], dim=1)
                         for i in range(0, len(patches), chunk)])  # on the patches' device
    model.train(was_training)
    return out


def train_cnn(patches: torch.Tensor, labels: torch.Tensor, classes: int, *, width: int,
              epochs: int, lr: float, seed: int,
              on_step: OnStep | None = None) -> SpectralSpatialNet:
    """The baseline: full-batch Adam on the labelled patches' cross-entropy for ``epochs``
    steps, a random square symmetry of the patches per step. Trains on the patches' device
    (the model initialised on the CPU, then moved; the symmetries drawn on the CPU)."""
    torch.manual_seed(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    model = SpectralSpatialNet(classes, width).to(patches.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    for step in range(epochs):
        opt.zero_grad()
        loss = F.cross_entropy(model(augment(patches, gen)), labels)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, float(loss.detach()))
    return model.eval()


__all__ = ["SPATIAL_LAYERS", "SPECTRAL_LAYERS", "OnStep", "SpectralSpatialNet",
           "class_probabilities", "train_cnn"]
