r"""Post-training static int8 quantization with calibration (torch.ao), for convolutions and
linear layers.

Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference", CVPR 2018; Krishnamoorthi's 2018 whitepaper. Weights (per output channel)
and activations get affine int8 grids whose scales and zero points come from observing
calibration inputs:

.. math:: q(x) = \operatorname{clamp}(\operatorname{round}(x / s) + z, q_{min}, q_{max}),
          \qquad s = (x_{max} - x_{min}) / (q_{max} - q_{min})
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers import torch_compat  # noqa: F401 - its models must unpickle
from faultlab.workers.transforms._common import (
    CONV_TYPES,
    TransformParams,
    calibration_batch,
    example_inputs,
    is_graph,
    replace_module,
    to_torch_linear,
)
from faultlab.workers.transforms.int8_dynamic import Backend, set_backend
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(TransformParams):
    """Parameters of ``int8_static``."""

    backend: Backend = "x86"
    """torch.ao quantized engine (its default qconfig picks the observers)."""
    samples: int = Field(256, ge=1, le=1_000_000)
    """Calibration inputs drawn from the training split with ``seed``."""
    batch_size: int = Field(128, ge=1, le=65_536)
    """Calibration inputs per forward pass (image models)."""
    mode: Literal["auto", "fx", "eager"] = "auto"
    """``fx`` (traced graph), ``eager`` (wrap each layer) or ``auto`` (FX, else eager)."""


def _calibrate(model: nn.Module, data: Any, samples: int, batch_size: int, seed: int) -> None:
    inputs, _, _ = calibration_batch(data, samples, seed)
    with torch.no_grad():
        if is_graph(data):
            model(*inputs)
        else:
            x = inputs[0]
            for i in range(0, len(x), batch_size):
                model(x[i : i + batch_size])


def _fx(
    model: nn.Module, data: Any, backend: str, samples: int, batch_size: int, seed: int
) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    prepared = prepare_fx(model, get_default_qconfig_mapping(backend), example_inputs(data))
    _calibrate(prepared, data, samples, batch_size, seed)
    return picklable(convert_fx(prepared))


def picklable(graph_module: Any) -> nn.Module:
    """``graph_module`` with its nodes' string type annotations dropped.

    Tracing a ``forward`` written under postponed annotations (``from __future__ import
    annotations``, as the zoo's models are) records ``x: "torch.Tensor"`` as a string; the
    generated code then holds that string as a global, and pickling the GraphModule (how a
    campaign's context leaves the prepare task) fails on it ("'str' object has no attribute
    '__name__'"). The annotations play no part in what the module computes."""
    changed = False
    for node in graph_module.graph.nodes:
        if isinstance(node.type, str):
            node.type = None
            changed = True
    if changed:
        graph_module.recompile()
    return graph_module  # type: ignore[no-any-return]


def _eager(
    model: nn.Module, data: Any, backend: str, samples: int, batch_size: int, seed: int
) -> nn.Module:
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


@TRANSFORMS.register(
    "int8_static", params=Params,
    citation="Jacob et al., CVPR 2018: q(x) = round(x / s) + z, s and z from calibration",
)
def int8_static(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
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
    backend, samples, batch_size, mode = (
        params.backend, params.samples, params.batch_size, params.mode
    )
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
                    problem = f"FX tracing failed ({type(exc).__name__}: {exc}); use eager"
                    raise SpecError("mode", problem) from None
        return _eager(model, data, backend, samples, batch_size, seed)
