"""What a compressed model costs: parameters, nonzeros, storage bytes, MACs, CPU latency.

Definitions (docs/sparsity.md has the same text):

* **weights** — elements of the weight tensors of convolutions and linear layers (PyG
  ``Linear`` inside GNN convolutions included; quantized modules' int8 weights too);
  **params** — every parameter and floating buffer (biases, batch-norm statistics, …) plus
  quantized weights and biases.
* **bytes** — storage of the model: each weight tensor in the cheapest of (a) dense at its
  bit-width, (b) bitmap (values + 1 bit per element), (c) CSR (values + a 32-bit column index
  per nonzero + 32-bit row pointers), (d) for an N:M tensor, values + ``⌈log2 M⌉`` index bits
  per kept value; quantized tensors add one fp32 scale and one int32 zero point per channel;
  every other tensor is dense fp32.
* **MACs** — multiply–accumulates of one forward per input (images) or per graph:
  convolutions and linear layers dense (``outputs × fan-in``) and effective (skipping zero
  weights: ``outputs/out_channels × nonzeros``); for GNNs the aggregation cost is counted from
  the messages each ``MessagePassing`` call builds (``edges × message width``). Element-wise
  ops, pooling and normalisation are not counted. FLOPs = 2 × MACs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from faultlab.workers.transforms._common import is_weight_module

INDEX_BITS = 32


def module_weight(module: nn.Module) -> torch.Tensor | None:
    """The weight of a float or quantized conv / linear module (``None`` for other modules)."""
    if is_weight_module(module):
        weight: torch.Tensor = module.weight  # type: ignore[assignment]
        return weight
    if type(module).__module__.startswith("torch.ao.nn") and hasattr(module, "weight"):
        attr = module.weight
        value = attr() if callable(attr) else attr
        if isinstance(value, torch.Tensor):
            return value
    return None


def module_bias(module: nn.Module) -> torch.Tensor | None:
    """The bias of a float module, or of a quantized one (where ``bias`` is a method)."""
    attr: Any = getattr(module, "bias", None)
    if isinstance(attr, torch.Tensor):
        return attr
    value = attr() if callable(attr) else None
    return value if isinstance(value, torch.Tensor) else None


def dequantized(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.dequantize() if tensor.is_quantized else tensor


def channels_of(tensor: torch.Tensor) -> int:
    if tensor.is_quantized and tensor.qscheme() in (
        torch.per_channel_affine,
        torch.per_channel_symmetric,
    ):
        return int(tensor.q_per_channel_scales().numel())
    return 1


def tensor_bytes(numel: int, nonzeros: int, rows: int, bits: int, nm_m: int | None = None) -> float:
    """Cheapest storage (bytes) of a tensor with ``nonzeros`` of ``numel`` values at ``bits``."""
    dense = numel * bits / 8
    bitmap = nonzeros * bits / 8 + numel / 8
    csr = nonzeros * (bits + INDEX_BITS) / 8 + (rows + 1) * INDEX_BITS / 8
    options = [dense, bitmap, csr]
    if nm_m:
        options.append(nonzeros * (bits + math.ceil(math.log2(nm_m))) / 8)
    return min(options)


@dataclass
class ModelStats:
    weights: int
    weights_nonzero: int
    params: int
    nonzeros: int
    bytes: float
    bytes_fp32_dense: float
    """What the same tensors take dense in fp32 (the denominator of the compression ratio)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights, "weights_nonzero": self.weights_nonzero,
            "params": self.params, "nonzeros": self.nonzeros,
            "bytes": self.bytes, "bytes_fp32_dense": self.bytes_fp32_dense,
        }


def model_stats(
    model: nn.Module, weight_bits: int | None = None, nm_m: int | None = None
) -> ModelStats:
    """Counts of ``model`` (see the module docstring). ``weight_bits`` overrides the storage
    width of float weights (a fake-quantized model holds b-bit values in fp32 tensors);
    ``nm_m`` says weights are N:M sparse with group size M."""
    weights = weights_nz = params = nonzeros = 0
    total_bytes = dense_bytes = 0.0
    seen: set[int] = set()
    for module in model.modules():
        weight = module_weight(module)
        if weight is not None:
            values = dequantized(weight.detach())
            numel, nz = values.numel(), int(torch.count_nonzero(values))
            bits = 8 if weight.is_quantized else (weight_bits or torch.finfo(values.dtype).bits)
            weights += numel
            weights_nz += nz
            params += numel
            nonzeros += nz
            total_bytes += tensor_bytes(numel, nz, values.shape[0], bits, nm_m)
            if weight.is_quantized:
                total_bytes += channels_of(weight) * 8
            elif weight_bits:
                total_bytes += values.shape[0] * 4  # one fp32 scale per output channel
            dense_bytes += numel * 4
            seen.add(id(weight))
            if weight.is_quantized:  # float biases are parameters, counted below
                bias = module_bias(module)
                if bias is not None:
                    params += bias.numel()
                    nonzeros += int(torch.count_nonzero(dequantized(bias.detach())))
                    total_bytes += bias.numel() * 4
                    dense_bytes += bias.numel() * 4
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen or not tensor.is_floating_point():
            continue
        seen.add(id(tensor))
        params += tensor.numel()
        nonzeros += int(torch.count_nonzero(tensor.detach()))
        total_bytes += tensor.numel() * tensor.element_size()
        dense_bytes += tensor.numel() * 4
    return ModelStats(weights, weights_nz, params, nonzeros, total_bytes, dense_bytes)


@dataclass
class MacCount:
    dense: float
    effective: float
    aggregation: float


def count_macs(model: nn.Module, inputs: tuple[Any, ...], per: int) -> MacCount:
    """MACs of ``model(*inputs)`` divided by ``per`` (the batch size; 1 for a graph)."""
    counts = {"dense": 0.0, "effective": 0.0, "aggregation": 0.0}
    handles = []

    def weight_hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        weight = module_weight(module)
        if weight is None or not isinstance(output, torch.Tensor):
            return
        values = dequantized(weight.detach())
        out_channels = values.shape[0]
        out = dequantized(output) if output.is_quantized else output
        channel_dim = 1 if values.dim() > 2 else out.dim() - 1
        positions = out.numel() / max(out.shape[channel_dim], 1)
        counts["dense"] += positions * out_channels * values[0].numel()
        counts["effective"] += positions * int(torch.count_nonzero(values))

    def message_hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            counts["aggregation"] += float(output.numel())

    for module in model.modules():
        if module_weight(module) is not None:
            handles.append(module.register_forward_hook(weight_hook))
        if hasattr(module, "register_message_forward_hook") and hasattr(module, "propagate"):
            handles.append(cast(Any, module).register_message_forward_hook(message_hook))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    scale = 1.0 / max(per, 1)
    return MacCount(
        dense=(counts["dense"] + counts["aggregation"]) * scale,
        effective=(counts["effective"] + counts["aggregation"]) * scale,
        aggregation=counts["aggregation"] * scale,
    )


def measure_latencies(
    forwards: Sequence[Callable[[], Any]], *, repeats: int, warmup: int, threads: int
) -> list[float]:
    """Fastest wall time of each ``forward()`` over ``repeats`` calls (the ``timeit``
    convention: other processes only ever add time, so the minimum is the least disturbed
    estimate), timed round-robin (a, b, c, a, b, c, …) so a change in machine load hits every
    model alike, with ``threads`` intra-op threads (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            for _ in range(warmup):
                for forward in forwards:
                    forward()
            times: list[list[float]] = [[] for _ in forwards]
            for _ in range(repeats):
                for i, forward in enumerate(forwards):
                    start = time.perf_counter()
                    forward()
                    times[i].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return [float(min(t)) for t in times]


def latency_setting(model: nn.Module, inputs: tuple[Any, ...], batch: int) -> dict[str, Any]:
    """What a latency figure was measured with, reported next to it: the device the forward
    ran on, the batch size (inputs per forward; 1 for a full-graph forward) and the dtype of
    the model's parameters."""
    first = next(model.parameters(), None)
    tensor = next((a for a in inputs if isinstance(a, torch.Tensor)), None)
    device = first.device if first is not None else (tensor.device if tensor is not None
                                                     else torch.device("cpu"))
    dtype = first.dtype if first is not None else torch.float32
    return {"latency_device": str(device), "latency_batch_size": int(batch),
            "latency_dtype": str(dtype).removeprefix("torch.")}
