"""Model weights from bytes a user uploaded, without running any of their code.

The bytes are a `safetensors <https://huggingface.co/docs/safetensors>`_ file (a JSON header and
raw tensor data: nothing to execute), or else a ``torch.save`` state dict read with
``torch.load(weights_only=True)`` (PyTorch's restricted unpickler: tensors and plain containers
only). They load with ``load_state_dict(strict=True)``: a file that does not fit the
architecture is an error naming the missing and unexpected keys, never a partial model.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from faultlab.errors import SpecError

_SHOWN_KEYS = 5


def read_state_dict(blob: bytes, field: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or of a ``torch.save``-d state dict."""
    try:
        return load_safetensors(blob)
    except SafetensorError:
        pass
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure: the bytes are not a state dict
        raise SpecError(
            field, "is neither a safetensors file nor a torch.save state dict "
            f"(torch.load with weights_only=True: {str(exc)[:120]})"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise SpecError(field, "must hold a state dict (tensor names to tensors), got "
                        f"{type(state).__name__}")
    return dict(state)


def _names(keys: set[str]) -> str:
    shown = ", ".join(sorted(keys)[:_SHOWN_KEYS])
    more = len(keys) - _SHOWN_KEYS
    return shown + (f" and {more} more" if more > 0 else "")


def load_weights(model: nn.Module, blob: bytes, field: str) -> None:
    """Loads ``blob`` into ``model`` (strictly: every key, every shape)."""
    state = read_state_dict(blob, field)
    expected = set(model.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        parts = [f"missing {_names(missing)}"] if missing else []
        parts += [f"unexpected {_names(unexpected)}"] if unexpected else []
        raise SpecError(field, "does not fit the model: " + "; ".join(parts))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SpecError(field, f"does not fit the model: {str(exc)[:300]}") from None
