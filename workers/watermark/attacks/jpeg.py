"""JPEG-style compression of every query: 8×8 block DCT-II, quantization with the JPEG
standard tables scaled by the IJG quality formula, inverse DCT (ITU-T T.81 / ISO 10918-1,
Annex K; quality scaling of the Independent JPEG Group's ``jcparam.c``).

Three-channel inputs go through the JFIF YCbCr transform with the luminance table for Y and
the chrominance table for Cb and Cr (no chroma subsampling, no entropy coding: those are
lossless or shape-specific); other channel counts use the luminance table per channel. Inputs
are mapped from the data range to 0–255 and back, and padded to whole blocks by edge
replication. Strength = quality 1–100 (lower is stronger).

Implements: x' = IDCT(round(DCT(x)/Q_q)·Q_q), Q_q = ⌊(Q·s + 50)/100⌋.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength

LUMINANCE = torch.tensor(  # module constants: moved to the images' device where used
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
    device="cpu",
)
CHROMINANCE = torch.tensor(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    dtype=torch.float32,
    device="cpu",
)


def dct_matrix(size: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (``D @ block @ D.T`` transforms a block), built on the
    CPU (moved where used, so every device gets the same matrix)."""
    k = torch.arange(size, dtype=torch.float64, device="cpu")[:, None]
    n = torch.arange(size, dtype=torch.float64, device="cpu")[None, :]
    d = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    d[0] /= math.sqrt(2.0)
    return d.float()


def scaled_table(table: torch.Tensor, quality: int) -> torch.Tensor:
    """The IJG quality scaling of a quantization table (entries ≥ 1)."""
    quality = min(100, max(1, quality))
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return torch.floor((table * scale + 50) / 100).clamp_min(1.0)


def _rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.stack([y, cb, cr], 1)


def _ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    y, cb, cr = x[:, 0], x[:, 1] - 128, x[:, 2] - 128
    return torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)


def jpeg_compress(x: torch.Tensor, quality: int, low: float, high: float) -> torch.Tensor:
    """``x`` (``N×C×H×W`` in [low, high]) after a JPEG-style round trip at ``quality``, on
    ``x``'s device."""
    n, channels, height, width = x.shape
    pixels = (x - low) / max(high - low, 1e-12) * 255.0
    color = channels == 3
    if color:
        pixels = _rgb_to_ycbcr(pixels)
    pad_h, pad_w = (-height) % 8, (-width) % 8
    pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else pixels
    ph, pw = pixels.shape[2:]
    blocks = pixels.reshape(n, channels, ph // 8, 8, pw // 8, 8).permute(0, 1, 2, 4, 3, 5) - 128
    d = dct_matrix().to(x.device)
    coeffs = d @ blocks @ d.T
    tables = torch.stack(
        [
            scaled_table(CHROMINANCE if color and c > 0 else LUMINANCE, quality)
            for c in range(channels)
        ]
    ).to(x.device)[None, :, None, None]
    restored = d.T @ (torch.round(coeffs / tables) * tables) @ d + 128
    pixels = restored.permute(0, 1, 2, 4, 3, 5).reshape(n, channels, ph, pw)[:, :, :height, :width]
    if color:
        pixels = _ycbcr_to_rgb(pixels)
    pixels = pixels.clamp(0, 255)
    return low + pixels / 255.0 * (high - low)


class JpegParams(AttackParams):
    """Parameters of JPEG compression (none besides the strength)."""

    strength = Strength(
        tier="input",
        knob="JPEG quality (1-100)",
        low=1,
        high=100,
        stronger="lower",
        defaults=(90, 70, 50, 30, 10),
        integer=True,
    )


@ATTACKS.register(
    "jpeg",
    params=JpegParams,
    citation="ITU-T T.81 Annex K, IJG quality scaling: x' = IDCT(round(DCT(x)/Q_q)·Q_q), "
    "Q_q = ⌊(Q·s + 50)/100⌋",
)
def jpeg(model: nn.Module, strength: float, params: JpegParams, ctx: AttackContext) -> Attacked:
    """JPEG-style DCT quantization of every query (strength: quality, lower is stronger)."""
    low, high = ctx.data_range
    return Attacked(model, lambda x: jpeg_compress(x, int(strength), low, high))
