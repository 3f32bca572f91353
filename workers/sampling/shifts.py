"""Input shift generators for the operational pool: what operation does to inputs that the
test set never showed (after Hendrycks & Dietterich, "Benchmarking neural network robustness
to common corruptions and perturbations", ICLR 2019).

Each generator maps a batch ``N × C × H × W`` of inputs in their dataset's value range and a
``severity`` in (0, 1] to shifted inputs, deterministically in the given generator. Noise and
contrast are scaled by the batch's value range, so they work for [0, 1] images and for
standardised ones alike; no input shape is hard-coded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from faultlab.registry import Registry

ShiftFn = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]

#: Every shift generator, with the corruption it models (after Hendrycks & Dietterich 2019).
SHIFTS: Registry[ShiftFn] = Registry("shift", field="sampling.pool.shifts.name")


def _range(x: torch.Tensor) -> tuple[float, float]:
    return float(x.min()), float(x.max())


@SHIFTS.register("clean", citation="identity: x′ = x")
def clean(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """The inputs as they are."""
    return x.clone()


@SHIFTS.register(
    "gaussian_noise",
    citation="Hendrycks & Dietterich, ICLR 2019: x′ = clip(x + ε), ε ~ N(0, (s (max − min) / 2)²)",
)
def gaussian_noise(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """Additive Gaussian noise, standard deviation ``0.5 · severity`` of the value range."""
    low, high = _range(x)
    noise = torch.randn(x.shape, generator=gen) * (0.5 * severity * (high - low))
    return (x + noise).clamp(low, high)


@SHIFTS.register(
    "salt_pepper",
    citation="Hendrycks & Dietterich, ICLR 2019: a share 0.3 s of pixels set to min or max",
)
def salt_pepper(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """A share ``0.3 · severity`` of the pixels set to the minimum or the maximum value."""
    low, high = _range(x)
    hit = torch.rand(x.shape, generator=gen) < 0.3 * severity
    salt = torch.rand(x.shape, generator=gen) < 0.5
    return torch.where(hit, torch.where(salt, torch.full_like(x, high), torch.full_like(x, low)), x)


@SHIFTS.register(
    "blur",
    citation="Hendrycks & Dietterich, ICLR 2019: x′ = G_σ * x, σ = 0.3 + 1.2 s",
)
def blur(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian blur with standard deviation ``0.3 + 1.2 · severity`` pixels (3×3 or 5×5)."""
    sigma = 0.3 + 1.2 * severity
    radius = 1 if sigma < 0.8 else 2
    grid = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel_1d = torch.exp(-(grid**2) / (2 * sigma**2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    kernel = (kernel_1d[:, None] * kernel_1d[None, :]).expand(x.shape[1], 1, -1, -1)
    padded = F.pad(x, (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel.contiguous(), groups=x.shape[1])


@SHIFTS.register(
    "translate",
    citation="Hendrycks & Dietterich, ICLR 2019: x′(i, j) = x(i − dy, j − dx), |d| ≤ ⌈s W / 4⌉",
)
def translate(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """Every input moved by up to ``⌈severity · W / 4⌉`` pixels in a random direction, the
    uncovered border filled with the minimum value."""
    low, _ = _range(x)
    limit = max(1, math.ceil(severity * x.shape[-1] / 4))
    shifts = torch.randint(-limit, limit + 1, (len(x), 2), generator=gen)
    out = torch.full_like(x, low)
    height, width = x.shape[-2:]
    for i, (dy, dx) in enumerate(shifts.tolist()):
        ys, yd = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (
            slice(-dy, height), slice(0, height + dy))
        xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (
            slice(-dx, width), slice(0, width + dx))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


@SHIFTS.register(
    "rotate",
    citation="Hendrycks & Dietterich, ICLR 2019: x′ = R_θ x (bilinear), |θ| ≤ 45° s",
)
def rotate(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """Rotation by a random angle of up to ``45° · severity`` either way (bilinear)."""
    low, _ = _range(x)
    angle = (torch.rand(len(x), generator=gen) * 2 - 1) * math.radians(45.0 * severity)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x - low, grid, align_corners=False) + low


@SHIFTS.register(
    "contrast",
    citation="Hendrycks & Dietterich, ICLR 2019: x′ = μ + (1 − 0.8 s)(x − μ)",
)
def contrast(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """Contrast reduced towards each input's mean by a factor ``1 − 0.8 · severity``."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * (1.0 - 0.8 * severity)


@SHIFTS.register(
    "occlusion",
    citation="Hendrycks & Dietterich, ICLR 2019: a square of side ⌈s min(H, W) / 2⌉ set to min",
)
def occlusion(x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """A square of side ``⌈severity · min(H, W) / 2⌉`` at a random place set to the minimum."""
    low, _ = _range(x)
    height, width = x.shape[-2:]
    side = max(1, math.ceil(severity * min(height, width) / 2))
    top = torch.randint(0, height - side + 1, (len(x),), generator=gen).tolist()
    left = torch.randint(0, width - side + 1, (len(x),), generator=gen).tolist()
    out = x.clone()
    for i, (t, s) in enumerate(zip(top, left, strict=True)):
        out[i, :, t : t + side, s : s + side] = low
    return out


def apply_shift(name: str, x: torch.Tensor, severity: float, gen: torch.Generator) -> torch.Tensor:
    """The registered shift ``name`` applied to ``x``."""
    return SHIFTS.get(name).impl(x, severity, gen)
