"""Workarounds for PyTorch bugs that a campaign's context meets on its way to the workers.

Imported by :mod:`faultlab.workers.engine`, so every process that prepares or unpickles a
campaign context has them.

* **Quantized convolutions do not unpickle as modules** (torch 2.13). A campaign's context
  leaves the ``prepare`` task through Ray's cloudpickle; ``torch.ao.nn.quantized`` convolutions
  reduce to ``copyreg.__newobj__`` plus their own ``__setstate__``, which sets their
  attributes on the bare object but never the ``nn.Module`` internals (``_modules``,
  ``_parameters``, the hook dicts). The unpickled convolution then fails at its first
  ``named_modules()``, and an FX-converted int8 model (``model.transforms: [int8_static]``),
  whose unpickling re-traces the graph, fails to unpickle at all. The patched ``__setstate__``
  runs ``nn.Module.__init__`` on a bare object first; the original then sets everything it
  sets today.
"""

from __future__ import annotations

import functools
from typing import Any

from torch import nn


def _module_internals_first(setstate: Any) -> Any:
    @functools.wraps(setstate)
    def __setstate__(self: nn.Module, state: Any) -> None:
        if "_modules" not in self.__dict__:
            nn.Module.__init__(self)
        setstate(self, state)

    __setstate__.__faultlab_patched__ = True  # type: ignore[attr-defined]
    return __setstate__


def patch_quantized_conv_unpickling() -> None:
    """Idempotent: patches ``torch.ao.nn.quantized`` ``_ConvNd.__setstate__`` once."""
    from torch.ao.nn.quantized.modules import conv

    current = conv._ConvNd.__setstate__
    if not getattr(current, "__faultlab_patched__", False):
        conv._ConvNd.__setstate__ = _module_internals_first(current)  # type: ignore[method-assign]


patch_quantized_conv_unpickling()
