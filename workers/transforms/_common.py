"""Helpers shared by the compression transforms (not a transform: the registry skips ``_*``).

* which modules carry a prunable weight (convolutions, ``nn.Linear`` and PyG's ``Linear``
  inside ``GCNConv``/``SGConv``/``GATConv``/``SAGEConv``/``GINConv``);
* the pydantic pieces the transforms' ``Params`` models share (layer selection, pruning
  level, per-layer fractions; the registry names errors ``model.transforms[i].params.<name>``);
* the mask arithmetic of ``torch.nn.utils.prune`` (``round(amount · n)`` weights with the
  smallest scores removed, ties broken by ``torch.topk``), so masks match it exactly;
* calibration batches and model calls that work for image and graph models alike.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from faultlab.errors import SpecError

#: Layer types whose ``weight`` the pruning transforms consider.
CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def pyg_linear_type() -> type[nn.Module] | None:
    """PyG's ``torch_geometric.nn.dense.linear.Linear`` (the weight inside PyG convs), or None
    when PyG was never imported — then no model can hold one, and importing it (seconds)
    is not worth it for image models."""
    module = sys.modules.get("torch_geometric.nn.dense.linear")
    linear = getattr(module, "Linear", None)
    return linear if isinstance(linear, type) else None


def weight_types() -> tuple[type[nn.Module], ...]:
    pyg = pyg_linear_type()
    return (*CONV_TYPES, nn.Linear) + ((pyg,) if pyg is not None else ())


def is_weight_module(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        isinstance(module, weight_types())
        and isinstance(weight, torch.Tensor)
        and weight.is_floating_point()
        and not isinstance(weight, nn.parameter.UninitializedParameter)
    )


@dataclass(frozen=True)
class WeightLayer:
    """A module whose ``weight`` is pruned, and its qualified name."""

    name: str
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        weight: torch.Tensor = self.module.weight  # type: ignore[assignment]
        return weight


def weight_layers(
    model: nn.Module,
    layers: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    field: str = "layers",
) -> list[WeightLayer]:
    """The prunable layers of ``model`` in module order: all of them, or those named in
    ``layers``, minus ``exclude``. Unknown or weightless names raise SpecError(``field``)."""
    found = {name: module for name, module in model.named_modules() if is_weight_module(module)}
    excluded = set(exclude)
    for name in excluded:
        if name not in found:
            raise SpecError("exclude", f"no prunable layer named {name!r}", sorted(found))
    if layers is None:
        chosen = [n for n in found if n not in excluded]
    else:
        chosen = []
        modules = dict(model.named_modules())
        for i, name in enumerate(layers):
            if name not in found:
                kind = type(modules[name]).__name__ if name in modules else None
                problem = (
                    f"{name!r} is a {kind}, not a convolution or linear layer"
                    if kind else f"no layer named {name!r}"
                )
                raise SpecError(f"{field}[{i}]", problem, sorted(found))
            if name not in excluded:
                chosen.append(name)
        order = list(found)
        chosen = sorted(set(chosen), key=order.index)
    return [WeightLayer(name, found[name]) for name in chosen]


# ---------------------------------------------------------------- parameters

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
"""A fraction of weights (or channels) removed: a number in [0, 1)."""
Ratio = Annotated[float, Field(gt=0.0, le=1.0)]
"""A fraction kept: a number in (0, 1]."""
LayerName = Annotated[str, Field(min_length=1, max_length=1000)]
Scope = Literal["layer", "global"]
"""Rank within each layer (every layer loses the same fraction) or across all chosen layers."""


class TransformParams(BaseModel):
    """Base of every transform's parameters: unknown keys rejected, types not coerced."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True
    )


class LayerSelection(TransformParams):
    """Which prunable (convolution / linear) layers a transform touches."""

    layers: list[LayerName] | None = Field(None, max_length=100_000)
    """Only these layers (qualified module names); default every convolution / linear layer."""
    exclude: list[LayerName] | None = Field(None, max_length=100_000)
    """Layers left untouched."""


class PruningParams(LayerSelection):
    """A pruning level and the layers it applies to."""

    sparsity: Fraction
    """Fraction of weights removed, in [0, 1)."""


class PerLayerPruningParams(PruningParams):
    """Pruning with per-layer overrides of the level (a sensitivity-derived allocation)."""

    per_layer: dict[str, Fraction] | None = None
    """Layer name → fraction in [0, 1) overriding ``sparsity`` for that layer."""


# ---------------------------------------------------------------- masks


def prune_count(fraction: float, total: int) -> int:
    """How many of ``total`` elements a ``fraction`` removes: ``round(fraction · total)``,
    the convention of ``torch.nn.utils.prune`` (Python's round-half-to-even)."""
    return min(total, max(0, round(fraction * total)))


def lowest_scores_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """A float mask of ``scores``' shape: 0 at the ``count`` smallest scores, 1 elsewhere.

    Uses ``torch.topk(largest=False)`` on the flattened scores, as ``torch.nn.utils.prune``
    does, so ties fall the same way.
    """
    mask = torch.ones_like(scores, dtype=torch.float32)
    if count > 0:
        drop = torch.topk(scores.reshape(-1), k=count, largest=False).indices
        mask.view(-1)[drop] = 0.0
    return mask


def layerwise_masks(scores: list[torch.Tensor], fractions: list[float]) -> list[torch.Tensor]:
    """Each tensor's own ``fraction`` of lowest scores removed."""
    return [
        lowest_scores_mask(s, prune_count(f, s.numel()))
        for s, f in zip(scores, fractions, strict=True)
    ]


def global_masks(scores: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """The lowest ``fraction`` of all scores pooled across tensors (concatenated in order)."""
    if not scores:
        return []
    flat = torch.cat([s.reshape(-1) for s in scores])
    mask = lowest_scores_mask(flat, prune_count(fraction, flat.numel()))
    out, start = [], 0
    for s in scores:
        out.append(mask[start : start + s.numel()].view_as(s))
        start += s.numel()
    return out


def bake_masks(layers: list[WeightLayer], masks: list[torch.Tensor]) -> None:
    """Multiplies each weight by its mask in place: zeros are baked in, no parametrization."""
    with torch.no_grad():
        for layer, mask in zip(layers, masks, strict=True):
            layer.weight.mul_(mask.to(layer.weight.dtype))


def per_layer_fractions(
    layers: list[WeightLayer], default: float, per_layer: Mapping[str, float] | None
) -> list[float]:
    per_layer = dict(per_layer or {})
    names = {layer.name for layer in layers}
    for name in per_layer:
        if name not in names:
            raise SpecError(f"per_layer.{name}", "no such prunable layer", sorted(names))
    return [float(per_layer.get(layer.name, default)) for layer in layers]


# ---------------------------------------------------------------- data


Calibration = tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor | None]
_CALIBRATION: dict[tuple[int, int, int], tuple[weakref.ref[Any], Calibration]] = {}


def calibration_batch(data: Any, samples: int, seed: int) -> Calibration:
    """``(model inputs, labels, node ids)`` of a seeded calibration sample from the train split.

    Images: ``samples`` training images (``node ids`` is None). Graphs: the whole graph as
    input (message passing needs it) and ``samples`` training nodes whose rows are used.
    Computed once per (dataset object, samples, seed) in a process and reused.
    """
    key = (id(data), samples, seed)
    cached = _CALIBRATION.get(key)
    if cached is not None and cached[0]() is data:
        return cached[1]
    batch = _draw_calibration(data, samples, seed)
    try:
        _CALIBRATION[key] = (weakref.ref(data), batch)
    except TypeError:  # objects without weak references are simply not cached
        pass
    if len(_CALIBRATION) > 256:
        _CALIBRATION.pop(next(iter(_CALIBRATION)))
    return batch


def _draw_calibration(data: Any, samples: int, seed: int) -> Calibration:
    gen = torch.Generator().manual_seed(seed)
    if getattr(data, "kind", "image") == "graph":
        graph = data.data
        train = data.split("train")
        take = train[torch.randperm(len(train), generator=gen)[: min(samples, len(train))]]
        return (graph.x, graph.edge_index), graph.y[take], take
    x, y = data.split("train")
    idx = torch.randperm(len(x), generator=gen)[: min(samples, len(x))].sort().values
    return (x[idx],), y[idx], None


def example_inputs(data: Any, samples: int = 2) -> tuple[torch.Tensor, ...]:
    """A small input tuple for tracing (two images, or the whole graph)."""
    if getattr(data, "kind", "image") == "graph":
        return (data.data.x, data.data.edge_index)
    x, _ = data.split("train")
    return (x[:samples],)


def is_graph(data: Any) -> bool:
    return getattr(data, "kind", "image") == "graph"


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Puts ``new`` at the qualified ``name`` inside ``model``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def to_torch_linear(model: nn.Module) -> nn.Module:
    """Replaces every PyG ``Linear`` by an ``nn.Linear`` holding the same tensors (same names).

    PyG's ``Linear`` computes exactly ``F.linear(x, weight, bias)``; the swap lets
    torch.ao quantization and Torch-Pruning, which recognise ``nn.Linear`` only, handle the
    weights inside GNN convolutions.
    """
    pyg = pyg_linear_type()
    if pyg is None:
        return model
    for name, module in list(model.named_modules()):
        if isinstance(module, pyg):
            weight = cast(torch.Tensor, module.weight)
            bias = cast(torch.Tensor | None, module.bias)
            linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            with torch.no_grad():
                linear.weight.copy_(weight)
                if bias is not None:
                    linear.bias.copy_(bias)
            linear.train(module.training)
            replace_module(model, name, linear)
    return model


def rank_for(ratio: float, full: int) -> int:
    """Rank kept at ``ratio`` of the full rank: ``max(1, ceil(ratio · full))``."""
    return max(1, min(full, math.ceil(ratio * full - 1e-9)))
