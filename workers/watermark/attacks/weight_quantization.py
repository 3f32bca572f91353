"""Post-training weight quantization as a removal attack (Jacob et al., CVPR 2018; used against
watermarks by Uchida et al. 2017 and the Watermark-Robustness-Toolbox). Reuses the shared
compression transform ``fake_quant``: every conv/linear weight becomes its symmetric b-bit
quantize–dequantize value, one scale per output channel (or per tensor); 2 bits is ternary.
Strength = bits (2–8, the transform's range); lower is stronger."""

from __future__ import annotations

from torch import nn

from faultlab.workers.transforms import get_transform
from faultlab.workers.watermark.attacks.base import AttackContext, Attacked, register_attack
from faultlab.workers.watermark.catalog import WeightQuantizationParams


@register_attack("weight_quantization")
def weight_quantization(
    model: nn.Module, strength: float, params: WeightQuantizationParams, ctx: AttackContext
) -> Attacked:
    """Quantizes every conv/linear weight to ``strength`` bits with ``fake_quant``."""
    transform = get_transform("fake_quant", f"{ctx.field}.name")
    per_channel = params.granularity == "channel"
    return Attacked(transform.fn(model, ctx.data, seed=ctx.seed, bits=int(strength), per_channel=per_channel))
