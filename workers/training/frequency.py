"""Learning in the frequency domain (Xu, Qin, Sun, Wang, Chen, Ren, CVPR 2020).

The input transform of the JPEG pipeline: RGB → YCbCr (ITU-R BT.601, full range),
``[Y, Cb, Cr]ᵀ = M [R, G, B]ᵀ + (0, ½, ½)ᵀ``; every 8×8 block of every component through
the orthonormal 2-D DCT-II, ``F = D B Dᵀ`` with ``D`` the 8-point orthonormal DCT matrix
(``scipy.fft.dct(I, norm="ortho")``); the 64 coefficients of a block become 64 channels at
1/8 of the resolution, so an ``H×W`` image is ``192 × H/8 × W/8`` (channel
``64·component + 8u + v`` holds frequency ``(u, v)`` of Y, Cb or Cr). Each channel is
standardised with the training set's mean and deviation.

Channel selection: a gate per channel, ``g_c ∈ {0, 1}``, sampled during training from a
binary concrete (Gumbel-sigmoid) relaxation of ``sigmoid(ℓ_c)`` with a straight-through hard
value, learned with the network under a penalty on the mean gate probability; the static
selection for inference keeps the ``k`` channels with the largest ``ℓ_c``, and the first
convolution is narrowed to them (:func:`narrow_first_conv`). Xu et al. report that the
low-frequency channels, Y's above all, are the ones kept.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from scipy import fft as sfft
from torch import nn

BLOCK = 8
CHANNELS = 3 * BLOCK * BLOCK
COMPONENTS = ("Y", "Cb", "Cr")
YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                      [-0.168735892, -0.331264108, 0.5],
                      [0.5, -0.418687589, -0.081312411]], device="cpu")
YCBCR_OFFSET = torch.tensor([0.0, 0.5, 0.5], device="cpu")


def dct_matrix(n: int = BLOCK) -> torch.Tensor:
    """``D`` with ``D x = dct(x, norm="ortho")`` (orthonormal: ``D Dᵀ = I``), float64."""
    return torch.from_numpy(sfft.dct(np.eye(n), norm="ortho", axis=0))


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB in [0, 1] → YCbCr (Cb, Cr centred on ½)."""
    m = YCBCR.to(x)
    return torch.einsum("ij,njhw->nihw", m, x) + YCBCR_OFFSET.to(x)[None, :, None, None]


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    inv = torch.linalg.inv(YCBCR.double()).to(x)
    return torch.einsum("ij,njhw->nihw", inv, x - YCBCR_OFFSET.to(x)[None, :, None, None])


def block_dct(x: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
    """N×C×H×W (H, W multiples of 8) → N×(64·C)×H/8×W/8, channel ``64c + 8u + v``."""
    n, c, h, w = x.shape
    d = dct_matrix().to(x) if d is None else d
    blocks = x.reshape(n, c, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    coeffs = torch.einsum("ui,ncaibj,vj->ncuvab", d, blocks, d)
    return coeffs.reshape(n, c * BLOCK * BLOCK, h // BLOCK, w // BLOCK)


def block_idct(z: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
    """The inverse of :func:`block_dct` (``B = Dᵀ F D``)."""
    n, cc, a, b = z.shape
    c = cc // (BLOCK * BLOCK)
    d = dct_matrix().to(z) if d is None else d
    coeffs = z.reshape(n, c, BLOCK, BLOCK, a, b)
    blocks = torch.einsum("ui,ncuvab,vj->ncaibj", d, coeffs, d)
    return blocks.reshape(n, c, a * BLOCK, b * BLOCK)


def frequency_channels(x: torch.Tensor) -> torch.Tensor:
    """RGB images → their 192 block-DCT channels of Y, Cb, Cr."""
    return block_dct(rgb_to_ycbcr(x))


def channel_name(index: int) -> str:
    component, rest = divmod(index, BLOCK * BLOCK)
    u, v = divmod(rest, BLOCK)
    return f"{COMPONENTS[component]}({u},{v})"


class FrequencyFront(nn.Module):
    """RGB → standardised DCT channels → gated (training) or the ``k`` selected channels."""

    dct: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    selected: torch.Tensor

    def __init__(self, channels: int, gate: bool) -> None:
        super().__init__()
        # Built on the CPU like every layer of a cell's model, then moved with it.
        self.register_buffer("dct", dct_matrix().float())
        self.register_buffer("mean", torch.zeros(CHANNELS, device="cpu"))
        self.register_buffer("std", torch.ones(CHANNELS, device="cpu"))
        self.register_buffer("selected", torch.arange(channels, device="cpu"))
        self.gate_logits = nn.Parameter(torch.zeros(CHANNELS, device="cpu")) if gate else None
        self.gating = False
        """While true (the gate phase), every channel passes, times its sampled gate."""
        self.temperature = 2.0 / 3.0

    def fit(self, images: torch.Tensor) -> None:
        """Per-channel mean and deviation of the training images' DCT channels."""
        with torch.no_grad():
            z = frequency_channels(images)
            self.mean.copy_(z.mean(dim=(0, 2, 3)))
            self.std.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-6))

    def probabilities(self) -> torch.Tensor:
        assert self.gate_logits is not None
        return torch.sigmoid(self.gate_logits)

    def sample_gate(self) -> torch.Tensor:
        """Hard gates with straight-through gradients of the binary-concrete relaxation. The
        uniform noise is drawn on the CPU (by the generator the cell's ``torch.manual_seed``
        seeds) and moved to the gate's device, as the CPU path draws it."""
        logits = self.gate_logits
        assert logits is not None
        if not self.training:
            return (logits >= 0).float()
        u = torch.rand(logits.shape, dtype=logits.dtype, device="cpu").to(logits.device)
        u = u.clamp(1e-6, 1 - 1e-6)
        noise = torch.log(u) - torch.log1p(-u)
        soft = torch.sigmoid((logits + noise) / self.temperature)
        return (soft > 0.5).float() + soft - soft.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = block_dct(rgb_to_ycbcr(x), self.dct)
        z = (z - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        if self.gating:
            return z * self.sample_gate()[None, :, None, None]
        return z.index_select(1, self.selected)

    def select(self, k: int) -> torch.Tensor:
        """Keeps the ``k`` channels of largest gate logit (sorted by index); ends gating."""
        assert self.gate_logits is not None
        top = torch.topk(self.gate_logits.detach(), k).indices.sort().values
        self.selected = top
        self.gating = False
        return top


def first_conv(model: nn.Module, in_channels: int) -> tuple[str, nn.Conv2d]:
    """The first ``Conv2d`` of ``model`` reading ``in_channels`` channels (the input layer)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == in_channels:
            return name, module
    raise ValueError(f"the model has no convolution reading {in_channels} channels")


def narrow_first_conv(model: nn.Module, selected: torch.Tensor) -> None:
    """Replaces the input convolution (192 channels) by one reading only ``selected``,
    with the trained weights of those channels (on the convolution's device and dtype)."""
    name, conv = first_conv(model, CHANNELS)
    new = nn.Conv2d(len(selected), conv.out_channels, cast(Any, conv.kernel_size),
                    cast(Any, conv.stride), cast(Any, conv.padding), cast(Any, conv.dilation),
                    conv.groups, conv.bias is not None, device=conv.weight.device,
                    dtype=conv.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(conv.weight[:, selected])
        if conv.bias is not None and new.bias is not None:
            new.bias.copy_(conv.bias)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


__all__ = ["BLOCK", "CHANNELS", "COMPONENTS", "FrequencyFront", "block_dct", "block_idct",
           "channel_name", "dct_matrix", "first_conv", "frequency_channels",
           "narrow_first_conv", "rgb_to_ycbcr", "ycbcr_to_rgb"]
