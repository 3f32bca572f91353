"""The one registry of campaign kinds: where each kind's params model, engine and plots live.

Torch-free: the SDK, the CLI and the coordinator's edge validation read it without importing
any engine. Adding a kind means adding one :class:`Kind` entry here and one package under
``workers/`` that holds the three objects the entry names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab.errors import SpecError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from faultlab.workers.engine import Engine


@dataclass(frozen=True)
class Kind:
    """One campaign kind. Each field is an import path ``module:attribute``."""

    name: str
    """The ``kind:`` of a spec; also the name of the spec section holding the params."""
    params: str
    """The pydantic model of the kind's spec section (importable without torch)."""
    engine: str
    """The :class:`~faultlab.workers.engine.Engine` subclass that runs the kind."""
    plots: str
    """``plot(report) -> dict[name, Figure]``: the kind's matplotlib figures."""
    summary: str = ""
    """One line for ``faultlab zoo`` and the docs."""


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "faults",
            params="faultlab.workers.faults.params:FaultParams",
            engine="faultlab.workers.faults.engine:FaultEngine",
            plots="faultlab.workers.faults.plots:plot",
            summary="hardware-fault injection: masked / SDC / critical SDC / DUE rates",
        ),
        Kind(
            "sparsity",
            params="faultlab.workers.sparsity.params:SparsityParams",
            engine="faultlab.workers.sparsity.engine:SparsityEngine",
            plots="faultlab.workers.sparsity.plots:plot",
            summary="pruning, quantization and compression sweeps",
        ),
        Kind(
            "watermark",
            params="faultlab.workers.watermark.params:WatermarkParams",
            engine="faultlab.workers.watermark.engine:WatermarkEngine",
            plots="faultlab.workers.watermark.plots:plot",
            summary="watermark embedding and removal-attack robustness",
        ),
        Kind(
            "sampling",
            params="faultlab.workers.sampling.params:SamplingParams",
            engine="faultlab.workers.sampling.engine:SamplingEngine",
            plots="faultlab.workers.sampling.plots:plot",
            summary="operational-accuracy estimation with few labels (DAIC)",
        ),
        Kind(
            "training",
            params="faultlab.workers.training.params:TrainingParams",
            engine="faultlab.workers.training.engine:TrainingEngine",
            plots="faultlab.workers.training.plots:plot",
            summary="training runs (GNN, image, hyperspectral workloads) × recipes: curves",
        ),
    )
}


def kind_names() -> list[str]:
    return sorted(KINDS)


def get_kind(name: Any, field: str = "kind") -> Kind:
    """The registry entry of ``name``; unknown names raise :class:`SpecError` with the kinds."""
    if not isinstance(name, str) or name not in KINDS:
        raise SpecError(field, f"unknown campaign kind {str(name)[:60]!r}", kind_names())
    return KINDS[name]


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def params_model(kind: str) -> type[BaseModel]:
    """The pydantic model of a kind's spec section."""
    model: type[BaseModel] = _load(get_kind(kind).params)
    return model


def engine_class(kind: str) -> type[Engine[Any]]:
    """The engine class of a kind (imports the engine, hence torch)."""
    cls: type[Engine[Any]] = _load(get_kind(kind).engine)
    return cls


def plots_function(kind: str) -> Any:
    """The kind's ``plot(report)`` function (imports matplotlib)."""
    return _load(get_kind(kind).plots)
