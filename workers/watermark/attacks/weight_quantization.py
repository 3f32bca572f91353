"""Post-training weight quantization as a removal attack (Jacob et al., CVPR 2018; used against
watermarks by Uchida et al. 2017 and the Watermark-Robustness-Toolbox). Reuses the shared
compression transform ``fake_quant``: every conv/linear weight becomes its symmetric b-bit
quantize–dequantize value, one scale per output channel (or per tensor); 2 bits is ternary.
Strength = bits (2–8, the transform's range); lower is stronger.

Implements: w' = s·clamp(round(w/s), −q, q), s = max|w|/q, q = 2^(b−1) − 1.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from faultlab.workers.transforms import run_transform
from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength


class WeightQuantizationParams(AttackParams):
    """Parameters of weight quantization."""

    strength = Strength(
        tier="weights",
        knob="bits per weight",
        low=2,
        high=8,
        stronger="lower",
        defaults=(8, 6, 4, 3, 2),
        integer=True,
    )

    granularity: Literal["tensor", "channel"] = "channel"
    """One symmetric scale per weight tensor or per output channel."""


@ATTACKS.register(
    "weight_quantization",
    params=WeightQuantizationParams,
    citation="Jacob et al., CVPR 2018: w' = s·clamp(round(w/s), −q, q), s = max|w|/q, "
    "q = 2^(b−1) − 1",
)
def weight_quantization(
    model: nn.Module, strength: float, params: WeightQuantizationParams, ctx: AttackContext
) -> Attacked:
    """Quantizes every conv/linear weight to ``strength`` bits with ``fake_quant``."""
    quant = {"bits": int(strength), "per_channel": params.granularity == "channel"}
    quantized = run_transform("fake_quant", model, ctx.data, quant, seed=ctx.seed, field=ctx.field)
    return Attacked(quantized)
