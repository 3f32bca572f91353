"""Model transforms shared by every engine: registered by name, applied in a chain.

A transform is ``fn(model, data, *, seed, **params) -> nn.Module``: it may change the model
in place or return a new one (e.g. a physically slimmed or int8-quantized model). The sparsity
engine sweeps them, the watermark engine uses them as attacks, and any campaign can evaluate a
transformed model through ``model.transforms`` in its spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from faultlab.errors import SpecError
from faultlab.registry import import_submodules

TransformFn = Callable[..., nn.Module]


@dataclass(frozen=True)
class TransformEntry:
    name: str
    fn: TransformFn
    description: str
    validate: Callable[[dict[str, Any]], None] | None = None
    """Checks ``params`` without a model; raises SpecError naming the parameter."""


_TRANSFORMS: dict[str, TransformEntry] = {}


def register_transform(
    name: str, *, validate: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[TransformFn], TransformFn]:
    def deco(fn: TransformFn) -> TransformFn:
        _TRANSFORMS[name] = TransformEntry(name, fn, (fn.__doc__ or "").strip(), validate)
        return fn

    return deco


def transform_entries() -> dict[str, TransformEntry]:
    import_submodules("faultlab.workers.transforms")
    return dict(_TRANSFORMS)


def get_transform(name: str, field: str = "model.transforms") -> TransformEntry:
    entries = transform_entries()
    if name not in entries:
        raise SpecError(f"{field}.name", f"unknown transform {name!r}", sorted(entries))
    return entries[name]


def validate_transforms(specs: list[Any], field: str = "model.transforms") -> None:
    for i, spec in enumerate(specs):
        entry = get_transform(spec.name, f"{field}[{i}]")
        if entry.validate is not None:
            try:
                entry.validate(dict(spec.params))
            except SpecError as exc:
                raise SpecError(f"{field}[{i}].params.{exc.field}", exc.problem, exc.allowed) from None


def apply_transforms(
    model: nn.Module, data: Any, specs: list[Any], *, seed: int = 0, field: str = "model.transforms"
) -> nn.Module:
    """Applies the chain in order and returns the resulting model (in eval mode)."""
    validate_transforms(specs, field)
    for spec in specs:
        model = get_transform(spec.name, field).fn(model, data, seed=seed, **dict(spec.params))
    model.eval()
    return model
