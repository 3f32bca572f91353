"""Post-training static int8 quantization with calibration (torch.ao), for convolutions and
linear layers."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.transforms._common import (
    CONV_TYPES,
    calibration_batch,
    check_choice,
    check_int,
    check_keys,
    example_inputs,
    is_graph,
    replace_module,
    to_torch_linear,
)
from faultlab.workers.transforms.int8_dynamic import BACKENDS, set_backend
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"backend", "samples", "batch_size", "mode"}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_choice(params, "backend", BACKENDS)
    check_choice(params, "mode", ["auto", "fx", "eager"])
    check_int(params, "samples", 1, 1_000_000)
    check_int(params, "batch_size", 1, 65_536)


def _calibrate(model: nn.Module, data: Any, samples: int, batch_size: int, seed: int) -> None:
    inputs, _, _ = calibration_batch(data, samples, seed)
    with torch.no_grad():
        if is_graph(data):
            model(*inputs)
        else:
            x = inputs[0]
            for i in range(0, len(x), batch_size):
                model(x[i : i + batch_size])


def _fx(model: nn.Module, data: Any, backend: str, samples: int, batch_size: int, seed: int) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    prepared = prepare_fx(model, get_default_qconfig_mapping(backend), example_inputs(data))
    _calibrate(prepared, data, samples, batch_size, seed)
    return convert_fx(prepared)  # type: ignore[no-any-return]


def _eager(model: nn.Module, data: Any, backend: str, samples: int, batch_size: int, seed: int) -> nn.Module:
    from torch.ao.quantization import QuantWrapper, convert, get_default_qconfig, prepare

    qconfig = get_default_qconfig(backend)
    for name, module in list(model.named_modules()):
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            wrapper = QuantWrapper(module)
            wrapper.qconfig = qconfig  # type: ignore[assignment]
            replace_module(model, name, wrapper)
    prepare(model, inplace=True)
    _calibrate(model, data, samples, batch_size, seed)
    convert(model, inplace=True)
    return model


@register_transform("int8_static", validate=validate)
def int8_static(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    backend: str = "x86",
    samples: int = 256,
    batch_size: int = 128,
    mode: str = "auto",
) -> nn.Module:
    """Post-training static quantization (Jacob et al., CVPR 2018; Krishnamoorthi's 2018
    whitepaper): int8 weights (per-channel) and int8 activations whose scales come from
    observing ``samples`` training inputs drawn with ``seed`` (histogram / min-max
    observers of torch.ao's default ``backend`` qconfig).

    ``mode: fx`` traces the model (``prepare_fx``/``convert_fx``): conv–batch-norm–ReLU are
    fused and the whole traced graph runs in int8. ``mode: eager`` wraps every convolution
    and linear layer (PyG ``Linear`` → ``nn.Linear`` first) in quantize → int8 layer →
    dequantize (``QuantWrapper``; module ``conv1`` becomes ``conv1.module``), which works on
    any model, GNN message passing included, at the price of a float round trip per layer.
    ``auto`` (default) uses FX for image models and falls back to eager when tracing fails
    (always for graph models, whose PyG convolutions do not trace)."""
    set_backend(backend)
    model = to_torch_linear(model).eval()
    if not any(isinstance(m, (*CONV_TYPES, nn.Linear)) for m in model.modules()):
        raise SpecError("mode", "the model has no convolution or linear layer to quantize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        if mode == "fx" or (mode == "auto" and not is_graph(data)):
            import copy

            try:
                return _fx(copy.deepcopy(model), data, backend, samples, batch_size, seed)
            except Exception as exc:  # noqa: BLE001 - any tracing failure means "not traceable"
                if mode == "fx":
                    raise SpecError("mode", f"FX tracing failed ({type(exc).__name__}: {exc}); use eager") from None
        return _eager(model, data, backend, samples, batch_size, seed)
