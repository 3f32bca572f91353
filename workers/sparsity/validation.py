"""The sparsity engine's deep checks: the spec against the real model's structure.

Layer names, coupled channel groups a structured method needs, layer shapes an N:M pattern
needs, the layers a sensitivity scan names, and whether the teacher can be slimmed into a
student. Every error names the spec field at fault and, where it helps, the allowed values.
"""

from __future__ import annotations

import copy

from torch import nn

from faultlab.errors import SpecError
from faultlab.spec import CampaignSpec, model_label
from faultlab.workers.sparsity.params import STRUCTURED, SparsityParams
from faultlab.workers.transforms import validate_transforms
from faultlab.workers.transforms._common import weight_layers
from faultlab.workers.zoo import Dataset, build_model, load_dataset


def validate_structure(spec: CampaignSpec, params: SparsityParams) -> None:
    """Every check of the sparsity section that needs the (untrained) model."""
    data = load_dataset(spec.dataset)
    model = build_model(spec.model, data).eval()
    _check_chains(spec, params)
    layer_names = [layer.name for layer in weight_layers(model)]
    if not layer_names:
        raise SpecError("model", "has no convolution or linear layer to compress")
    roots = _group_roots(spec, params, model, data)
    if "nm" in params.methods:
        for i, pattern in enumerate(params.nm):
            if not any(layer.weight.shape[1] % pattern.m == 0 for layer in weight_layers(model)):
                raise SpecError(f"sparsity.nm[{i}]",
                                f"no layer has a multiple of M={pattern.m} input channels")
    _check_scan_layers(params, model, roots, layer_names)
    if params.distillation.width_ratios and params.distillation.student is None:
        _check_slimmable(model, data)


def _check_chains(spec: CampaignSpec, params: SparsityParams) -> None:
    if spec.model.transforms:
        validate_transforms(list(spec.model.transforms))
    for i, chain in enumerate(params.chains):
        validate_transforms(list(chain.transforms), f"sparsity.chains[{i}].transforms")
    if params.compose is not None:
        for i, chain in enumerate(params.compose.chains):
            validate_transforms(list(chain.transforms),
                                f"sparsity.compose.chains[{i}].transforms")


def _group_roots(
    spec: CampaignSpec, params: SparsityParams, model: nn.Module, data: Dataset
) -> list[str]:
    """Root layers of the model's channel groups, when a structured method needs them."""
    structured = [m for m in params.methods if m in STRUCTURED]
    scan = params.sensitivity
    if not structured and (scan is None or scan.method not in STRUCTURED):
        return []
    from faultlab.workers.transforms.channel_pruning import channel_groups

    field = (
        f"sparsity.methods[{params.methods.index(structured[0])}]" if structured
        else "sparsity.sensitivity.method"
    )
    try:
        groups = channel_groups(copy.deepcopy(model), data)
    except SpecError as exc:
        raise SpecError(field, exc.problem, exc.allowed) from None
    if not groups:
        raise SpecError(
            field,
            f"{model_label(spec.model)} has no channel group that structured pruning can remove "
            "(its only layers map inputs to classes)",
            ["magnitude", "random", "gradient", "nm"],
        )
    return [g.root for g in groups]


def _check_scan_layers(
    params: SparsityParams, model: nn.Module, roots: list[str], layer_names: list[str]
) -> None:
    scan = params.sensitivity
    if scan is None or scan.layers is None:
        return
    pool = roots if scan.method in STRUCTURED else layer_names
    for i, name in enumerate(scan.layers):
        if name in pool:
            continue
        kind = "channel-group root layer" if scan.method in STRUCTURED else "prunable layer"
        modules = dict(model.named_modules())
        problem = f"no {kind} named {name!r}"
        if name in modules:
            problem = (
                f"{name!r} is a {type(modules[name]).__name__}, which "
                f"{scan.method} cannot prune on its own"
            )
        raise SpecError(f"sparsity.sensitivity.layers[{i}]", problem, pool)


def _check_slimmable(model: nn.Module, data: Dataset) -> None:
    from faultlab.workers.transforms.channel_pruning import channel_groups

    try:
        if not channel_groups(copy.deepcopy(model), data):
            raise SpecError("layers", "no channel group to slim")
    except SpecError as exc:
        raise SpecError(
            "sparsity.distillation.student",
            f"the teacher cannot be slimmed into a student ({exc.problem}); name a zoo "
            "model as the student",
        ) from None
