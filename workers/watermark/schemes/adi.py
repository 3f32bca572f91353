"""Adi, Baum, Cisse, Pinkas & Keshet, "Turning your weakness into a strength: watermarking deep
neural networks by backdooring" (USENIX Security 2018).

The trigger set is a collection of abstract images, each with a label drawn uniformly at random,
embedded by training with trigger batches mixed in. Because the labels are independent of
everything an innocent model sees, an innocent model matches each trigger with probability
exactly 1/K: the ownership test has a known null, Binomial(n, 1/K).

The paper's abstract images are not shipped here; they are generated procedurally instead
(smooth colour fields, Gaussian blobs and straight strokes, deterministic in the seed), or as
uniform noise with ``pattern: noise``.

The ownership test counts the matches ``m = Σ_i [f(t_i) = y_i]`` over the ``n`` triggers and
rejects "not derived from the owner's model" when ``P[Binomial(n, 1/K) ≥ m] ≤ α``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from faultlab.workers.watermark.catalog import SchemeParams
from faultlab.workers.watermark.imaging import cosine_patterns
from faultlab.workers.watermark.schemes.base import SCHEMES, Scheme, SchemeContext, WatermarkKey


class AdiParams(SchemeParams):
    """Adi et al. 2018 ("Turning your weakness into a strength", USENIX Security)."""

    pattern: Literal["abstract", "noise"] = "abstract"
    """Trigger images: procedural abstract images (blobs, strokes, colour fields) or i.i.d.
    uniform noise; labels are uniform random classes."""


def abstract_images(
    count: int, channels: int, height: int, width: int, gen: torch.Generator
) -> torch.Tensor:
    """``count`` abstract images in [0, 1]: a low-frequency colour field, a few Gaussian blobs and
    a few strokes each. Drawn on the CPU (``gen`` is a CPU generator): the key's images are the
    same on every device."""
    cpu = torch.device("cpu")
    y = torch.linspace(-1.0, 1.0, height, device=cpu)[:, None]
    x = torch.linspace(-1.0, 1.0, width, device=cpu)[None, :]
    images = torch.empty(count, channels, height, width, device=cpu)
    for i in range(count):
        freqs = torch.randint(0, 3, (3, 2), generator=gen, device=cpu)
        phases = torch.rand(channels, 3, generator=gen, device=cpu) * 2 * math.pi
        field = cosine_patterns(height, width, freqs, phases).mean(1) * 0.5 + 0.5
        image = field * torch.rand(channels, 1, 1, generator=gen, device=cpu)
        for _ in range(int(torch.randint(1, 4, (1,), generator=gen, device=cpu))):
            cy, cx = torch.rand(2, generator=gen, device=cpu) * 2 - 1
            radius = 0.15 + 0.5 * float(torch.rand(1, generator=gen, device=cpu))
            blob = torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
            image = image + blob * (torch.rand(channels, 1, 1, generator=gen, device=cpu) * 2 - 1)
        for _ in range(int(torch.randint(1, 4, (1,), generator=gen, device=cpu))):
            angle = float(torch.rand(1, generator=gen, device=cpu)) * math.pi
            offset = float(torch.rand(1, generator=gen, device=cpu)) * 1.6 - 0.8
            distance = (x * math.cos(angle) + y * math.sin(angle) - offset).abs()
            spread = 0.08 + 0.1 * float(torch.rand(1, generator=gen, device=cpu))
            stroke = (distance < spread).float()
            colour = torch.rand(channels, 1, 1, generator=gen, device=cpu)
            image = image * (1 - stroke) + colour * stroke
        images[i] = image
    low = images.flatten(1).min(1).values[:, None, None, None]
    high = images.flatten(1).max(1).values[:, None, None, None]
    return (images - low) / (high - low).clamp_min(1e-6)


@SCHEMES.register(
    "adi",
    params=AdiParams,
    citation="Adi et al., USENIX Security 2018: y_i ~ U{0..K-1}, null Binomial(n, 1/K)",
)
class AdiScheme(Scheme):
    """Abstract (or noise) trigger images with uniformly random labels."""

    def keygen(self, ctx: SchemeContext, params: AdiParams) -> WatermarkKey:
        gen = ctx.generator(2)
        channels, height, width = ctx.data.input_shape
        n = ctx.trigger_size
        if params.pattern == "abstract":
            unit = abstract_images(n, channels, height, width, gen)
        else:
            unit = torch.rand(n, channels, height, width, generator=gen, device="cpu")
        low, high = ctx.data_range
        labels = torch.randint(0, ctx.num_classes, (n,), generator=gen, device="cpu")
        return WatermarkKey(  # drawn on the CPU, then moved to the context's device
            scheme=ctx.scheme,
            triggers=(low + (high - low) * unit).to(ctx.device),
            labels=labels.to(ctx.device),
            num_classes=ctx.num_classes,
            num_outputs=ctx.num_classes,
            null="uniform",
            info={"pattern": params.pattern},
        )
