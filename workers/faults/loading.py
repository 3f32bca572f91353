"""Which workloads a fault campaign has, how they load, and which fault sites they offer.

A campaign's workloads are the cross product of its model (and ``faults.compare_models``) with
its dataset (and ``faults.compare_datasets``); each workload's sites are discovered on the real
model (running one forward for activation-level targets) and narrowed to ``faults.layers``.
Errors name the spec field of the model or dataset at fault.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from faultlab.errors import SpecError
from faultlab.spec import CampaignSpec, DatasetSpec, ModelSpec, dataset_label, model_label
from faultlab.workers.faults.params import FaultParams
from faultlab.workers.faults.sites import (
    SiteInfo,
    dynamic_sites,
    edge_index_site,
    eligible_by_default,
    is_message_passing,
    parameter_names,
    parameter_sites,
)
from faultlab.workers.zoo import GraphData, ImageData, build_model, load_dataset, trained_model

GRAPH_TARGETS = frozenset({"embedding", "message", "aggregation", "edge_index", "edge_weight"})


def workload_pairs(
    spec: CampaignSpec, params: FaultParams
) -> list[tuple[str, ModelSpec, DatasetSpec, str, str]]:
    """``(workload name, model, dataset, model field, dataset field)`` of the cross product."""
    models = [(spec.model, "model")] + [
        (m, f"faults.compare_models[{i}]") for i, m in enumerate(params.compare_models)
    ]
    datasets = [(spec.dataset, "dataset")] + [
        (d, f"faults.compare_datasets[{i}]") for i, d in enumerate(params.compare_datasets)
    ]
    out = []
    seen: dict[str, int] = {}
    for m, mfield in models:
        for d, dfield in datasets:
            label = model_label(m)
            arch = {k: v for k, v in sorted(m.options.items()) if k not in ("epochs", "lr")}
            if arch:
                label += "(" + ",".join(f"{k}={v}" for k, v in arch.items()) + ")"
            if m.transforms:
                label += "+" + "+".join(t.name for t in m.transforms)
            name = f"{label}@{dataset_label(d)}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            out.append((name, m, d, mfield, dfield))
    return out


def _reraise(exc: SpecError, field: str, default: str) -> SpecError:
    if field == default or not exc.field.startswith(default):
        return exc
    return SpecError(field + exc.field[len(default):], exc.problem, exc.allowed)


def skeleton_model(m: ModelSpec, data: ImageData | GraphData) -> nn.Module:
    """The untrained model with its transforms applied structurally, for validation: the
    same modules and parameter names as the real one, at the cost of a build. A transform
    that trains (``finetune``, ``distill``) runs a single step, whatever its ``epochs``: the
    coordinator validates, it never trains (the real epochs are checked by the params model).
    """
    from faultlab.workers.transforms import apply_transforms
    from faultlab.workers.transforms.registry import TRANSFORMS, validate_transforms

    model = build_model(m, data).eval()
    if not m.transforms:
        return model
    validate_transforms(list(m.transforms))
    steps = []
    for t in m.transforms:
        if "epochs" in TRANSFORMS.get(t.name).params.model_fields:
            t = t.model_copy(update={"params": {**t.params, "epochs": 1e-9}})
        steps.append(t)
    return apply_transforms(model, data, steps)


def load_workload(m: ModelSpec, d: DatasetSpec, mfield: str, dfield: str, trained: bool
                  ) -> tuple[nn.Module, ImageData | GraphData, str]:
    """The model (trained when ``trained``, else a skeleton for validation), its data and
    its digest (empty when untrained)."""
    try:
        data = load_dataset(d)
    except SpecError as exc:
        raise _reraise(exc, dfield, "dataset") from None
    try:
        if trained:
            model, model_digest = trained_model(m, data)
        else:
            model, model_digest = skeleton_model(m, data), ""
    except SpecError as exc:
        raise _reraise(exc, mfield, "model") from None
    return model, data, model_digest


def discover_sites(
    model: nn.Module, params: FaultParams, dtype: str, args: list[tuple[Any, ...]], kind: str
) -> list[SiteInfo]:
    """Every site of the campaign's target in ``model`` (running one forward, on the first
    input chunk, if needed: a site's call index is per forward, so an evaluation set split
    into several chunks has the sites of one)."""
    target = str(params.target)  # one target (several: targets.campaign_sites)
    if target in ("weight", "bias"):
        return parameter_sites(model, target, int8=dtype == "int8")
    if target == "edge_index":
        return [edge_index_site(args[0][1])] if kind == "graph" else []

    def run() -> None:  # one forward: call indices count within a forward, whatever the chunks
        model(*args[0])

    return dynamic_sites(model, target, run, per_sample=kind == "image")


def select_sites(
    sites: list[SiteInfo], params: FaultParams, model: nn.Module, workload: str
) -> list[SiteInfo]:
    """The sites named by ``faults.layers`` (default: every eligible one)."""
    if not params.layers:
        chosen = [s for s in sites if eligible_by_default(s)]
    else:
        chosen = []
        for name in params.layers:
            hits = [s for s in sites if name in (s.module, s.name, s.name.split("#")[0])]
            if not hits:
                valid = sorted({s.module for s in sites if s.module} | {s.name for s in sites})
                if params.target in ("weight", "bias"):
                    valid = sorted(set(valid) | set(parameter_names(model, params.target)))
                close = difflib.get_close_matches(name, valid, n=6, cutoff=0.4) or valid[:12]
                raise SpecError(
                    "faults.layers",
                    f"unknown layer {name!r} for target {params.target!r} in {workload}"
                    f" ({len(valid)} valid names)",
                    close,
                )
            chosen += [h for h in hits if h not in chosen]
    return chosen


def check_target(params: FaultParams, model: nn.Module, kind: str, workload: str) -> None:
    """Graph-level targets need a graph workload (and, but for ``edge_index``, message passing)."""
    if params.target in GRAPH_TARGETS:
        if kind != "graph":
            raise SpecError("faults.target", f"{params.target!r} needs a graph model; "
                            f"{workload} is an image workload", ["weight", "bias", "activation"])
        if params.target != "edge_index" and not any(
            is_message_passing(m) for m in model.modules()
        ):
            raise SpecError("faults.target", f"{workload} has no MessagePassing layer",
                            ["weight", "bias", "activation", "edge_index"])


__all__ = ["check_target", "discover_sites", "load_workload", "select_sites", "workload_pairs"]
