"""Checks that an engine's code puts every tensor it creates on the device it was given.

Two ways, both used by the engines' device tests: a static scan of the package's source for
torch factories (and layer constructors) called without ``device=``, and a recorder
(:class:`DefaultDeviceCalls`) of such calls made at run time from the package's files.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

#: torch functions that create a tensor (or generator) on the default device unless told so.
FACTORIES = ("tensor", "as_tensor", "zeros", "ones", "empty", "full", "arange", "linspace",
             "logspace", "eye", "rand", "randn", "randint", "randperm", "Generator")
MODULES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


def default_device_calls(source: str, allowed_builders: set[str] | None = None
                         ) -> Iterator[tuple[int, str]]:
    """(line, call) of each torch factory in ``source`` without ``device=``, and of each layer
    constructor without one — anywhere, or (``allowed_builders`` given) outside a model's
    ``__init__`` and the functions named there, which build a model's layers on the CPU."""
    tree = ast.parse(source)
    builders = set() if allowed_builders is None else {
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
        and (node.name == "__init__" or node.name in allowed_builders)}
    in_builder = {id(n) for b in builders for n in ast.walk(b)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner, name = node.func.value, node.func.attr
        if not isinstance(owner, ast.Name) or any(k.arg == "device" for k in node.keywords):
            continue
        if owner.id == "torch" and name in FACTORIES:
            yield node.lineno, f"torch.{name}"
        elif owner.id == "nn" and name in MODULES and id(node) not in in_builder:
            yield node.lineno, f"nn.{name}"


def package_default_device_calls(package: Path, builders: dict[str, set[str]] | None = None
                                 ) -> list[str]:
    """``file:line call`` of every :func:`default_device_calls` hit in ``package``'s files
    (``builders``: per file name, the functions that may build layers; None: none may)."""
    files = sorted(package.rglob("*.py"))
    assert len(files) > 30, files
    return [f"{p.relative_to(package)}:{line} {call}" for p in files
            for line, call in default_device_calls(
                p.read_text(), None if builders is None else builders.get(p.name, set()))]


class DefaultDeviceCalls(TorchFunctionMode):
    """Records each torch factory call made directly from ``package``'s files that leaves the
    device to the default (on a GPU shard, such a tensor would land on the CPU); ``seen``
    counts every factory call from there."""

    def __init__(self, package: Path) -> None:
        super().__init__()
        self.package = package
        self.calls: list[str] = []
        self.seen = 0
        self.functions = {getattr(torch, name) for name in FACTORIES if name != "Generator"}

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in self.functions:
            caller = sys._getframe(1).f_code.co_filename
            if Path(caller).is_relative_to(self.package):
                self.seen += 1
                if kwargs.get("device") is None:
                    line = sys._getframe(1).f_lineno
                    self.calls.append(f"{Path(caller).relative_to(self.package)}:{line} "
                                      f"{func.__name__}")
        return func(*args, **kwargs)
