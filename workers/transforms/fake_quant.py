"""Fake quantization to 2–8 bits (quantize → dequantize), the bit-width sweep of a
quantization study: accuracy of a b-bit model on any hardware."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from faultlab.workers.transforms._common import (
    calibration_batch,
    check_bool,
    check_int,
    check_keys,
    check_layer_selection,
    is_graph,
    weight_layers,
)
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"bits", "per_channel", "symmetric", "activation_bits", "samples", "layers", "exclude"}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    if "bits" not in params:
        from faultlab.errors import SpecError

        raise SpecError("bits", "is required (an integer in [2, 8])")
    check_int(params, "bits", 2, 8)
    if params.get("activation_bits") is not None:
        check_int(params, "activation_bits", 2, 8)
    check_int(params, "samples", 1, 1_000_000)
    check_bool(params, "per_channel")
    check_bool(params, "symmetric")
    check_layer_selection(params)


def fake_quantize(weight: torch.Tensor, bits: int, per_channel: bool, symmetric: bool) -> torch.Tensor:
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


@register_transform("fake_quant", validate=validate)
def fake_quant(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    bits: int,
    per_channel: bool = True,
    symmetric: bool = True,
    activation_bits: int | None = None,
    samples: int = 256,
    layers: list[str] | None = None,
    exclude: list[str] | None = None,
) -> nn.Module:
    """Uniform fake quantization of weights to ``bits`` ∈ [2, 8] (Jacob et al., CVPR 2018;
    Krishnamoorthi 2018; the bit-width studies surveyed by Cheng et al., "A Survey of Model
    Compression and Acceleration for Deep Neural Networks", 2017): each convolution / linear
    weight (GNN ``Linear`` weights included) is replaced in place by its b-bit
    quantize–dequantize value, symmetric per output channel by default. The model stays fp32
    but holds only ``2^b`` distinct values per channel; its storage is counted at ``bits``.
    ``activation_bits`` also quantizes each layer's input with a per-tensor range observed on
    ``samples`` calibration inputs — done by forward pre-hooks left on the returned model
    (the only transform that leaves hooks; weights alone need none)."""
    chosen = weight_layers(model, layers, exclude or ())
    with torch.no_grad():
        for layer in chosen:
            layer.weight.copy_(fake_quantize(layer.weight, bits, per_channel, symmetric))
    if activation_bits is not None:
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
        for layer in chosen:
            if layer.name in ranges:
                low, high = ranges[layer.name]
                layer.module.register_forward_pre_hook(InputFakeQuant(low, high, activation_bits))
    return model
