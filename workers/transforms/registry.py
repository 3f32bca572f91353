"""Model transforms shared by every engine: registered by name, applied in a chain.

A transform is ``fn(model, data, params, *, seed) -> nn.Module``, registered in
:data:`TRANSFORMS` with its pydantic ``Params`` model: ``params`` arrives validated by that
model. It may change the model in place or return a new one (e.g. a physically slimmed or
int8-quantized model). The sparsity engine sweeps them, the watermark engine uses them as
attacks, and any campaign can evaluate a transformed model through ``model.transforms`` in its
spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel
from torch import nn

from faultlab.registry import Registry

TransformFn = Callable[..., nn.Module]
"""``fn(model, data, params, *, seed) -> nn.Module``, ``params`` an instance of its model."""

#: Every transform, by the name ``model.transforms[].name`` uses.
TRANSFORMS: Registry[TransformFn] = Registry(
    "transform", "faultlab.workers.transforms", "model.transforms"
)


def run_transform(
    name: str,
    model: nn.Module,
    data: Any,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    seed: int = 0,
    field: str = "model.transforms",
) -> nn.Module:
    """Applies one transform; ``params`` is validated by its model (errors name
    ``<field>.params.<name>``, an unknown transform ``<field>.name``)."""
    method = TRANSFORMS.get(name, f"{field}.name")
    parsed = TRANSFORMS.parse_params(name, params, f"{field}.params")
    return method.impl(model, data, parsed, seed=seed)


def validate_transforms(specs: list[Any], field: str = "model.transforms") -> None:
    """Checks each spec's name and params without a model (``<field>[i].params.<name>``)."""
    for i, spec in enumerate(specs):
        TRANSFORMS.get(spec.name, f"{field}[{i}].name")
        TRANSFORMS.parse_params(spec.name, dict(spec.params), f"{field}[{i}].params")


def apply_transforms(
    model: nn.Module, data: Any, specs: list[Any], *, seed: int = 0, field: str = "model.transforms"
) -> nn.Module:
    """Applies the chain in order and returns the resulting model (in eval mode)."""
    validate_transforms(specs, field)
    for i, spec in enumerate(specs):
        model = run_transform(
            spec.name, model, data, dict(spec.params), seed=seed, field=f"{field}[{i}]"
        )
    model.eval()
    return model
