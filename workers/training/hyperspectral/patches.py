"""Patches around pixels: the spectral-spatial inputs of the 3-D CNN and the GAN.

A pixel's input is the ``P × P`` neighbourhood of its spectrum, as a one-channel volume
``(1, bands, P, P)`` (the layout of 3-D CNN hyperspectral classifiers, e.g. Chen et al.,
"Deep feature extraction and classification of hyperspectral images based on convolutional
neural networks", *IEEE TGRS* 54(10), 2016; Zhong et al. 2019 feed such cubes to their
discriminator). Scene edges are reflected.
"""

from __future__ import annotations

import numpy as np
import torch


def scene_tensor(cube: np.ndarray) -> torch.Tensor:
    """(H, W, B) array → (B, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(cube.transpose(2, 0, 1))).float()


def extract_patches(cube: torch.Tensor, pixels: torch.Tensor | np.ndarray,
                    patch: int) -> torch.Tensor:
    """``(n, 1, B, P, P)`` patches of ``cube`` (B, H, W) centred on the flat pixel indices
    ``pixels`` (row-major), edges reflected (zero-padded where the scene is smaller than
    the patch radius)."""
    radius = patch // 2
    _, height, width = cube.shape
    idx = torch.as_tensor(pixels, dtype=torch.long, device=cube.device)
    mode = "reflect" if radius < min(height, width) else "replicate"
    padded = torch.nn.functional.pad(cube[None], (radius,) * 4, mode=mode)[0]
    offsets = torch.arange(patch, device=cube.device)
    rows = (idx // width)[:, None, None] + offsets[None, :, None]
    cols = (idx % width)[:, None, None] + offsets[None, None, :]
    out = padded[:, rows, cols]  # (B, n, P, P)
    return out.permute(1, 0, 2, 3).unsqueeze(1).contiguous()


def augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random spatial symmetry (one of the 8 of the square) per call, the same for the
    whole batch: flips and quarter turns keep a patch's class. ``gen`` (a CPU generator)
    draws it, whatever device ``batch`` is on."""
    turns = int(torch.randint(4, (1,), generator=gen, device=gen.device))
    out = torch.rot90(batch, turns, dims=(3, 4))
    if int(torch.randint(2, (1,), generator=gen, device=gen.device)):
        out = torch.flip(out, dims=(4,))
    return out


__all__ = ["augment", "extract_patches", "scene_tensor"]
