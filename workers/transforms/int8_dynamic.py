"""Post-training dynamic int8 quantization of linear layers (torch.ao)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from faultlab.workers.transforms._common import check_choice, check_keys, to_torch_linear
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"backend"}
BACKENDS = ["x86", "fbgemm", "qnnpack", "onednn"]


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_choice(params, "backend", BACKENDS)


def set_backend(backend: str) -> None:
    if backend not in torch.backends.quantized.supported_engines:
        from faultlab.errors import SpecError

        raise SpecError("backend", "not supported by this torch build", torch.backends.quantized.supported_engines)
    torch.backends.quantized.engine = backend


@register_transform("int8_dynamic", validate=validate)
def int8_dynamic(model: nn.Module, data: Any, *, seed: int = 0, backend: str = "x86") -> nn.Module:
    """Post-training dynamic quantization (Jacob et al., "Quantization and Training of Neural
    Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018; Krishnamoorthi,
    "Quantizing deep convolutional networks for efficient inference: A whitepaper", 2018):
    every ``nn.Linear`` (PyG ``Linear`` weights inside GNN convolutions are first turned into
    ``nn.Linear``) gets per-tensor symmetric int8 weights, and its input activations are
    quantized on the fly from their observed range at each call
    (``torch.ao.quantization.quantize_dynamic``). Convolutions stay fp32 (dynamic
    quantization has no conv kernels); use ``int8_static`` for them. No calibration data."""
    from torch.ao.quantization import quantize_dynamic

    set_backend(backend)
    model = to_torch_linear(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
