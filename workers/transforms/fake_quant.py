r"""Fake quantization to 2–8 bits (quantize → dequantize), the bit-width sweep of a
quantization study: accuracy of a b-bit model on any hardware.

Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference", CVPR 2018; Krishnamoorthi, 2018; the bit-width studies surveyed by Cheng et
al., "A Survey of Model Compression and Acceleration for Deep Neural Networks", 2017. The
symmetric b-bit grid (per output channel by default) is

.. math:: w' = s \cdot \operatorname{clamp}(\operatorname{round}(w / s), -q, q), \qquad
          q = 2^{b-1} - 1, \ s = \max|w| / q

(asymmetric: ``2^b`` levels over ``[min(w, 0), max(w, 0)]`` with an integer zero point).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from faultlab.workers.transforms._common import (
    LayerSelection,
    WeightLayer,
    calibration_batch,
    is_graph,
    weight_layers,
)
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(LayerSelection):
    """Parameters of ``fake_quant``."""

    bits: int = Field(ge=2, le=8)
    """Weight bit width b ∈ [2, 8] (2 is ternary)."""
    per_channel: bool = True
    """One scale per output channel (axis 0) instead of one per tensor."""
    symmetric: bool = True
    """Symmetric grid around 0; otherwise affine with an integer zero point."""
    activation_bits: int | None = Field(None, ge=2, le=8)
    """Also quantize each layer's input to this many bits (range from calibration data)."""
    samples: int = Field(256, ge=1, le=1_000_000)
    """Calibration inputs observed for ``activation_bits``."""


def fake_quantize(
    weight: torch.Tensor, bits: int, per_channel: bool, symmetric: bool
) -> torch.Tensor:
    """``dequantize(quantize(w))`` on a uniform b-bit grid.

    Symmetric: levels ``k · s``, ``|k| ≤ 2^(b−1) − 1``, ``s = max|w| / (2^(b−1) − 1)`` (zero
    is exact, so pruned weights stay pruned; 2 bits is ternary). Asymmetric: ``2^b`` levels
    spanning ``[min(w, 0), max(w, 0)]`` with an integer zero point (zero also exact).
    Scales are per output channel (axis 0) or per tensor.
    """
    w = weight.detach()
    dims = tuple(range(1, w.dim())) if per_channel and w.dim() > 1 else tuple(range(w.dim()))
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = w.abs().amax(dim=dims, keepdim=True) / qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return torch.clamp(torch.round(w / scale), -qmax, qmax) * scale
    qmax = 2**bits - 1
    low = torch.clamp(w.amin(dim=dims, keepdim=True), max=0.0)
    high = torch.clamp(w.amax(dim=dims, keepdim=True), min=0.0)
    scale = (high - low) / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-low / scale)
    return (torch.clamp(torch.round(w / scale) + zero, 0, qmax) - zero) * scale


class InputFakeQuant:
    """A forward pre-hook quantizing a layer's input to ``bits`` (affine, per tensor) with a
    range fixed on calibration data: the activation half of a fake-quantized layer."""

    def __init__(self, low: float, high: float, bits: int) -> None:
        self.low, self.high, self.bits = min(low, 0.0), max(high, 0.0), bits

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]
        qmax = 2**self.bits - 1
        scale = max((self.high - self.low) / qmax, 1e-12)
        zero = round(-self.low / scale)
        q = (torch.clamp(torch.round(x / scale) + zero, 0, qmax) - zero) * scale
        return (q, *args[1:])


@TRANSFORMS.register(
    "fake_quant", params=Params,
    citation="Jacob et al., CVPR 2018: w' = s · clamp(round(w / s), −q, q), q = 2^(b−1) − 1",
)
def fake_quant(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """Uniform fake quantization of weights to ``bits`` ∈ [2, 8]: each convolution / linear
    weight (GNN ``Linear`` weights included) is replaced in place by its b-bit
    quantize–dequantize value, symmetric per output channel by default. The model stays fp32
    but holds only ``2^b`` distinct values per channel; its storage is counted at ``bits``.
    ``activation_bits`` also quantizes each layer's input with a per-tensor range observed on
    ``samples`` calibration inputs — done by forward pre-hooks left on the returned model
    (the only transform that leaves hooks; weights alone need none)."""
    chosen = weight_layers(model, params.layers, params.exclude or ())
    with torch.no_grad():
        for layer in chosen:
            layer.weight.copy_(
                fake_quantize(layer.weight, params.bits, params.per_channel, params.symmetric)
            )
    if params.activation_bits is not None:
        ranges = input_ranges(model, data, chosen, params.samples, seed)
        for layer in chosen:
            if layer.name in ranges:
                low, high = ranges[layer.name]
                hook = InputFakeQuant(low, high, params.activation_bits)
                layer.module.register_forward_pre_hook(hook)
    return model


def input_ranges(
    model: nn.Module, data: Any, chosen: list[WeightLayer], samples: int, seed: int
) -> dict[str, list[float]]:
    """``[min, max]`` of each chosen layer's input over ``samples`` calibration inputs."""
    ranges: dict[str, list[float]] = {}

    def observe(name: str) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            low, high = float(x.min()), float(x.max())
            seen = ranges.setdefault(name, [low, high])
            seen[0], seen[1] = min(seen[0], low), max(seen[1], high)

        return hook

    handles = [layer.module.register_forward_pre_hook(observe(layer.name)) for layer in chosen]
    inputs, _, _ = calibration_batch(data, samples, seed)
    try:
        with torch.no_grad():
            model.eval()
            if is_graph(data):
                model(*inputs)
            else:
                for i in range(0, len(inputs[0]), 128):
                    model(inputs[0][i : i + 128])
    finally:
        for handle in handles:
            handle.remove()
    return ranges
