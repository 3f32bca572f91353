"""CNNs for image datasets of any size and channel count (no hard-coded input shapes)."""

from __future__ import annotations

import torch
from torch import nn

from faultlab.workers.zoo.registry import ImageData, register_model


class SmallCNN(nn.Module):
    """Two conv blocks and two linear layers (LeNet-like)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc1 = nn.Linear(2 * width * 16, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.pool(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(x.flatten(1))))


class BasicBlock(nn.Module):
    """ResNet basic block (He et al., CVPR 2016) with batch norm and an identity/1×1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """A ResNet-style network: stem, three stages of basic blocks, global pooling, linear head."""

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 16, blocks: int = 1
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        stages: list[nn.Module] = []
        cin = width
        for i, cout in enumerate([width, 2 * width, 4 * width]):
            for j in range(blocks):
                stages.append(BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


@register_model("digits_cnn", task="image", epochs=15, lr=3e-3, weight_decay=1e-4, batch_size=64)
def digits_cnn(data: ImageData, width: int = 16) -> nn.Module:
    """Small CNN (2 conv + 2 linear layers)."""
    return SmallCNN(data.input_shape[0], data.num_classes, width)


@register_model("resnet_small", task="image", epochs=12, lr=3e-3, weight_decay=1e-4, batch_size=64)
def resnet_small(data: ImageData, width: int = 16, blocks: int = 1) -> nn.Module:
    """ResNet-style network (3 stages of basic blocks with batch norm and shortcuts)."""
    return ResNetSmall(data.input_shape[0], data.num_classes, width, blocks)
