"""Image helpers of the watermark engine: 2-D Fourier components, radial frequency masks,
and the imperceptibility metrics PSNR and SSIM.

Every helper computes on the device of the images it is given; the constants it needs (masks,
windows, frequency grids) are built on the CPU and moved there, so every device gets the very
same constants and a GPU shard differs from a CPU one only by the rounding of its kernels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def unique_frequencies(height: int, width: int) -> list[tuple[int, int]]:
    """Every distinct real 2-D Fourier component ``(u, v)`` of an ``height×width`` image.

    ``(u, v)`` and ``(-u, -v)`` are the same real pattern, so only the half-plane
    ``0 ≤ v ≤ width/2`` is kept, and on the self-conjugate columns (``v = 0`` and, for even
    widths, ``v = width/2``) only ``0 ≤ u ≤ height/2``.
    """
    freqs = []
    for v in range(width // 2 + 1):
        self_conjugate = v == 0 or (width % 2 == 0 and v == width // 2)
        rows = range(height // 2 + 1) if self_conjugate else range(height)
        freqs += [(u, v) for u in rows]
    return freqs


def mirror(u: int, v: int, height: int, width: int) -> tuple[int, int]:
    """The conjugate position of ``(u, v)`` (same real pattern)."""
    return (-u) % height, (-v) % width


def radial_fraction(
    u: int | torch.Tensor, v: int | torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Radial frequency of ``(u, v)`` as a fraction of the largest one (the corner, 0.5√2
    cycles per pixel), on the device of ``u`` (the CPU for an int)."""
    device = u.device if isinstance(u, torch.Tensor) else torch.device("cpu")
    fu = torch.as_tensor(u, dtype=torch.float32, device=device)
    fv = torch.as_tensor(v, dtype=torch.float32, device=device)
    fu = torch.where(fu > height / 2, fu - height, fu) / height
    fv = torch.where(fv > width / 2, fv - width, fv) / width
    return torch.sqrt(fu**2 + fv**2) / (0.5 * math.sqrt(2.0))


def radial_grid(height: int, width: int) -> torch.Tensor:
    """``height×width`` map of :func:`radial_fraction` in ``torch.fft.fft2`` layout, on the
    CPU (masks built from it are moved to the images' device)."""
    u = torch.arange(height, device="cpu")[:, None].expand(height, width)
    v = torch.arange(width, device="cpu")[None, :].expand(height, width)
    return radial_fraction(u, v, height, width)


def cosine_patterns(
    height: int, width: int, freqs: torch.Tensor, phases: torch.Tensor
) -> torch.Tensor:
    """``cos(2π(u·y/H + v·x/W) + φ)``: ``freqs`` is ``F×2`` (u, v), ``phases`` ``...×F``;
    the result is ``...×F×H×W``, on the device of ``phases``."""
    device = phases.device
    y = torch.arange(height, dtype=torch.float32, device=device)[:, None]
    x = torch.arange(width, dtype=torch.float32, device=device)[None, :]
    freqs = freqs.to(device)
    arg = 2 * math.pi * (
        freqs[:, 0, None, None].float() * y / height + freqs[:, 1, None, None].float() * x / width
    )
    return torch.cos(arg + phases[..., None, None])


def filter_frequencies(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Keeps the 2-D Fourier components of ``x`` (``N×C×H×W``) where ``keep`` (``H×W``,
    fft2 layout, moved to ``x``'s device) is true, per channel."""
    spectrum = torch.fft.fft2(x)
    return torch.fft.ifft2(spectrum * keep.to(spectrum.device, spectrum.dtype)).real


def psnr(reference: torch.Tensor, image: torch.Tensor, data_range: float) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (capped at 100 dB for identical images)."""
    mse = ((reference - image) ** 2).flatten(1).mean(1)
    value = 10 * torch.log10(data_range**2 / mse.clamp_min(1e-30))
    return value.clamp(max=100.0)


def ssim(reference: torch.Tensor, image: torch.Tensor, data_range: float) -> torch.Tensor:
    """Structural similarity per image (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004).

    The paper's settings: an isotropic Gaussian window of σ = 1.5 (radius 5, truncated to fit
    small images), K1 = 0.01, K2 = 0.03, the local statistics computed per channel with
    reflect padding ("same" size), and the SSIM map averaged over pixels and channels.
    """
    _, channels, height, width = reference.shape
    radius = max(1, min(5, (min(height, width) - 1) // 2))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device="cpu")
    g = torch.exp(-(offsets**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(channels, 1, -1, -1).contiguous()
    window = window.to(reference.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        padded = F.pad(t, (radius, radius, radius, radius), mode="reflect")
        return F.conv2d(padded, window, groups=channels)

    a, b = reference.float(), image.float()
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return ssim_map.flatten(1).mean(1)
