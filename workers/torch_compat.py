"""Workarounds for PyTorch bugs that a campaign's context meets on its way to the workers.

Imported by :mod:`faultlab.workers.engine` (and the int8 transforms), so every process that
prepares or unpickles a campaign context has them.

* **Quantized convolutions do not unpickle as modules** (torch 2.13). A campaign's context
  leaves the ``prepare`` task through Ray's cloudpickle; ``torch.ao.nn.quantized``
  convolutions reduce to ``copyreg.__newobj__`` plus their own ``__setstate__``, which sets
  their attributes on the bare object but never the ``nn.Module`` internals (``_modules``,
  ``_parameters``, the hook dicts). The unpickled convolution then fails at its first
  ``named_modules()``, and an FX-converted int8 model (``model.transforms: [int8_static]``),
  whose unpickling re-traces the graph, fails to unpickle at all. Each concrete quantized
  convolution class gets a ``copyreg`` reducer that rebuilds it with ``nn.Module.__init__``
  first and then its own ``__setstate__``. The classes themselves are untouched (their
  ``__setstate__`` is also what TorchScript serialisation compiles).
"""

from __future__ import annotations

import copyreg
from typing import Any

from torch import nn


def _rebuild_quantized_conv(cls: type[nn.Module], state: Any) -> nn.Module:
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    module.__setstate__(state)
    return module


def _reduce_quantized_conv(module: nn.Module) -> tuple[Any, ...]:
    return _rebuild_quantized_conv, (type(module), module.__getstate__())


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def patch_quantized_conv_pickling() -> None:
    """Registers the reducer for every quantized convolution class loaded (idempotent)."""
    import torch.ao.nn.intrinsic.quantized  # noqa: F401 - ConvReLU2d and friends
    from torch.ao.nn.quantized.modules import conv

    for cls in _subclasses(conv._ConvNd):
        copyreg.pickle(cls, _reduce_quantized_conv)


patch_quantized_conv_pickling()
