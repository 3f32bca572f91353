"""CIFAR-size CNNs for 3×32×32 inputs (``shapes32``, CIFAR-10): ResNet-18 and MobileNetV2.

* ``resnet18`` — He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, in the
  CIFAR layout: a 3×3 stem without max-pooling, four stages of two basic blocks
  (``y = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x))``) of widths 64·2^i, global average
  pooling, a linear head (11.2M parameters at ``width=64``).
* ``mobilenet_v2`` — Sandler et al., "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", CVPR 2018: inverted residual blocks (1×1 expansion by ``t``, 3×3 depthwise,
  linear 1×1 projection, identity shortcut when stride 1 and widths match) with the paper's
  (t, c, n, s) table, the first two strides set to 1 for 32×32 inputs (2.2M parameters).

Both train on first use with a short recipe (a few epochs of Adam) so a campaign starts in
minutes on a CPU; ``width`` / ``width_mult`` shrink them for tests. Layer names are stable
(``layers.<i>.conv1``, ``features.<i>.conv.<j>``), so campaigns can name them.
"""

from __future__ import annotations

import torch
from torch import nn

from faultlab.workers.zoo.cnn import BasicBlock
from faultlab.workers.zoo.registry import ImageData, register_model

#: MobileNetV2 (expansion t, output channels c, repeats n, first stride s), CIFAR strides.
_MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1)]


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (see the module docstring)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        cin = width
        for i in range(4):
            cout = width * 2**i
            for j in range(2):
                blocks.append(BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand (1×1), depthwise 3×3, linear projection (1×1)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """CIFAR-style MobileNetV2 (see the module docstring)."""

    def __init__(self, in_channels: int, num_classes: int, width_mult: float = 1.0) -> None:
        super().__init__()

        def scaled(c: int) -> int:
            return max(8, int(round(c * width_mult / 8)) * 8)

        cin = scaled(32)
        features: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(in_channels, cin, 3, 1, 1, bias=False), nn.BatchNorm2d(cin), nn.ReLU6())]
        for t, c, n, s in _MOBILENET_V2:
            for i in range(n):
                features.append(InvertedResidual(cin, scaled(c), s if i == 0 else 1, t))
                cin = scaled(c)
        last = scaled(1280) if width_mult > 1.0 else 1280
        features.append(nn.Sequential(nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last),
                                      nn.ReLU6()))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("resnet18", task="image", epochs=2, lr=2e-3, weight_decay=5e-4, batch_size=128)
def resnet18(data: ImageData, width: int = 64) -> nn.Module:
    """CIFAR-style ResNet-18 for 3×32×32 inputs (He et al., CVPR 2016)."""
    return ResNet18(data.input_shape[0], data.num_classes, width)


@register_model("mobilenet_v2", task="image", epochs=2, lr=2e-3, weight_decay=4e-5,
                batch_size=128)
def mobilenet_v2(data: ImageData, width_mult: float = 1.0) -> nn.Module:
    """CIFAR-style MobileNetV2 for 3×32×32 inputs (Sandler et al., CVPR 2018)."""
    return MobileNetV2(data.input_shape[0], data.num_classes, width_mult)
