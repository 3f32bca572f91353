"""``exported``: a ``torch.export`` program (``.pt2``) as an ``nn.Module`` with its own names.

A program made by :func:`torch.export.export` is a graph of ATen operators plus its state dict,
serialized as a zip archive (PyTorch, "torch.export", https://pytorch.org/docs/stable/export.html).
:func:`torch.export.unflatten` rebuilds the module hierarchy of the original model, so fault
sites keep their qualified names (``layers.0.conv1.weight``) and the named submodules exist for
activation hooks: a campaign on the program finds the same sites as on the eager model.

``torch.export.load`` falls back to an unrestricted unpickler for some archive entries; here
every ``torch.load`` it makes is forced to ``weights_only=True`` (PyTorch's
``TORCH_FORCE_WEIGHTS_ONLY_LOAD``), so a crafted archive cannot run code, and the archive's
uncompressed size is bounded before it is read.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, SupportsIndex, cast

import torch
from torch import nn
from torch.export.unflatten import UnflattenedModule

from faultlab.errors import SpecError

MAX_UNCOMPRESSED_BYTES = 4 << 30
"""Largest total uncompressed size of a ``.pt2`` archive's entries."""

# The environment is process-wide: one load at a time sets and restores it.
_FORCE_LOCK = threading.Lock()
_FORCE = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


@contextmanager
def _weights_only_loads() -> Iterator[None]:
    with _FORCE_LOCK:
        before = os.environ.get(_FORCE)
        os.environ[_FORCE] = "1"
        try:
            yield
        finally:
            if before is None:
                del os.environ[_FORCE]
            else:
                os.environ[_FORCE] = before


def _check_archive(blob: bytes, field: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise SpecError(field, "is not a torch.export program (.pt2 archive from "
                        "torch.export.save)") from None
    if size > MAX_UNCOMPRESSED_BYTES:
        raise SpecError(field, f"archive expands to {size:,} bytes "
                        f"(at most {MAX_UNCOMPRESSED_BYTES:,})")


class ExportedModule(UnflattenedModule):
    """An unflattened program that pickles (Ray ships campaign contexts) and deep-copies (the
    engines make dtype and pruned twins) as its ``.pt2`` bytes plus its current state dict: the
    graph itself holds objects that do neither."""

    program_bytes: bytes

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        return (_rebuild, (self.program_bytes, state, self.training))


def _rebuild(blob: bytes, state: dict[str, torch.Tensor], training: bool) -> nn.Module:
    module = load_exported(blob)
    module.load_state_dict(state, strict=True)
    return module.train(training)


def load_exported(blob: bytes, field: str = "model.file") -> nn.Module:
    """The program in ``blob``, unflattened to the original module tree, in eval mode."""
    _check_archive(blob, field)
    try:
        with _weights_only_loads():
            program = torch.export.load(io.BytesIO(blob))
    except Exception as exc:  # the deserializer raises many types on a foreign archive
        raise SpecError(field, "is not a loadable torch.export program "
                        f"({type(exc).__name__}: {str(exc)[:120]})") from None
    module = torch.export.unflatten(program)
    for sub in module.modules():
        if "_run_with_interpreter" in sub.__dict__:
            # Each module's generated code, run on the live module (its hooks and attributes),
            # not torch.fx.Interpreter node by node: the same graph, far less overhead.
            sub.__dict__["_run_with_interpreter"] = False
    module.__class__ = ExportedModule  # same layout, plus pickling: see ExportedModule
    exported = cast(ExportedModule, module)
    exported.program_bytes = blob
    return exported.eval()
