"""Small models for the fault-injection tests (random weights; nothing to train)."""

from __future__ import annotations

import torch
from torch import nn


class Shared(nn.Module):
    """A block whose ``act`` and ``lin`` modules are called twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(6, 6)
        self.act = nn.Tanh()
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.lin(x))
        h = self.act(self.lin(h))
        return self.head(h)


class TinyResNet(nn.Module):
    """Stem, two residual blocks (one with a 1×1 shortcut), pooling and a head."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.short_b = nn.Conv2d(8, 16, 1, stride=2)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)
        for bn in (self.stem[1], self.bn_a):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = self.relu(self.bn_a(self.conv_a(h)) + h)
        h = self.relu(self.conv_b(h) + self.short_b(h))
        return self.fc(self.pool(h).flatten(1))


def tiny_resnet() -> nn.Module:
    return TinyResNet()
