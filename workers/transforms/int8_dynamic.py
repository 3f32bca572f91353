r"""Post-training dynamic int8 quantization of linear layers (torch.ao).

Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference", CVPR 2018; Krishnamoorthi, "Quantizing deep convolutional networks for
efficient inference: A whitepaper", 2018. Weights are per-tensor symmetric int8 and each
input ``x`` is quantized at call time from its own range:

.. math:: q(w) = \operatorname{clamp}(\operatorname{round}(w / s_w), -127, 127), \quad
          s_w = \max|w| / 127; \qquad
          q(x) = \operatorname{round}(x / s_x) + z_x, \quad s_x = (\max x - \min x) / 255
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.transforms._common import TransformParams, to_torch_linear
from faultlab.workers.transforms.registry import TRANSFORMS

Backend = Literal["x86", "fbgemm", "qnnpack", "onednn"]


class Params(TransformParams):
    """Parameters of ``int8_dynamic``."""

    backend: Backend = "x86"
    """torch.ao quantized engine (must be supported by this torch build)."""


def set_backend(backend: str) -> None:
    if backend not in torch.backends.quantized.supported_engines:
        supported = torch.backends.quantized.supported_engines
        raise SpecError("backend", "not supported by this torch build", supported)
    torch.backends.quantized.engine = backend


@TRANSFORMS.register(
    "int8_dynamic", params=Params,
    citation="Jacob et al., CVPR 2018: q(w) = round(w / s), s = max|w| / 127, x per call",
)
def int8_dynamic(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """Post-training dynamic quantization: every ``nn.Linear`` (PyG ``Linear`` weights inside
    GNN convolutions are first turned into ``nn.Linear``) gets per-tensor symmetric int8
    weights, and its input activations are quantized on the fly from their observed range at
    each call (``torch.ao.quantization.quantize_dynamic``). Convolutions stay fp32 (dynamic
    quantization has no conv kernels); use ``int8_static`` for them. No calibration data."""
    from torch.ao.quantization import quantize_dynamic

    set_backend(params.backend)
    model = to_torch_linear(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
