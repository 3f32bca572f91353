"""What a training *workload* is: the kind of data and models a training campaign trains.

``training.workload`` names one (``graph`` by default; ``image``; ``hyperspectral``). A
workload is one module of this package that registers an instance of a :class:`Workload`
subclass with :data:`WORKLOADS`. It provides

* ``params_type`` — the pydantic model of its spec section ``training.<name>`` (validated
  when the spec is parsed, so errors name ``training.<name>.<field>``);
* :meth:`Workload.cells` / :meth:`Workload.validate` — the sweep size and deep checks, run
  by the coordinator before any Ray work;
* :meth:`Workload.prepare` / :meth:`Workload.plan` — load the data once; expand the cells
  (variants × recipes × datasets × seeds) into trials;
* :meth:`Workload.train` — train one cell; the result record has the graph loop's shape
  (``status``, final metrics, ``curve``, ``train_seconds``, ``checkpoint`` bytes);
* :meth:`Workload.aggregate` / :meth:`Workload.plots` — the report and its figures;
* :meth:`Workload.reference` / :meth:`Workload.build_model` — a finished cell as a model
  (``model: {from_campaign, cell}`` resolves to ``training:<family>`` with ``options``,
  which :meth:`build_model` turns back into the untrained architecture).

This module imports neither torch nor any workload: the spec parser (SDK side) reads the
registry for the section models only, so workload modules import torch inside methods.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from faultlab.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from faultlab.report import Report
    from faultlab.spec import CampaignSpec
    from faultlab.workers.engine import Engine, Prepared, TrialRecord
    from faultlab.workers.training.params import TrainingParams

OnPoint = Callable[[dict[str, float]], None]
"""Receives live curve points while a cell trains (the engine forwards them)."""


class Workload(abc.ABC):
    """Base of the training workloads: a cell's training and its model (see the module
    docstring). ``graph`` is one: the engine's own sweep of GNN variants."""

    name: ClassVar[str]
    params_type: ClassVar[type[BaseModel]]
    families: ClassVar[tuple[str, ...]] = ()
    """The ``training:<family>`` model names whose architecture :meth:`build_model` builds."""

    @abc.abstractmethod
    def train(self, context: Any, trial: dict[str, Any], on_point: OnPoint | None
              ) -> dict[str, Any]:
        """Trains one cell; its result record (see the module docstring)."""

    @abc.abstractmethod
    def reference(self, trial: dict[str, Any]) -> dict[str, Any]:
        """``{"name": "training:<family>", "options": {...}}`` rebuilding the cell's model."""

    @abc.abstractmethod
    def build_model(self, family: str, options: dict[str, Any], data: Any, field: str
                    ) -> nn.Module:
        """The untrained architecture of ``training:<family>`` with ``options`` for ``data``
        (errors name ``<field>.options.<option>``)."""

    def plots(self, report: Report) -> dict[str, Any]:
        """Figures of a report whose ``summary["workload"]`` is this one (none by default)."""
        return {}


class SweepWorkload(Workload):
    """A workload that plans, prepares and reports its own sweep (every workload but
    ``graph``). Trials must hold ``workload`` (the name), ``variant`` (a dict with
    ``name``), ``recipe`` (a dict with ``name``), ``dataset`` (a label) and ``seed``:
    ``model.cell`` selects on those. The context of :meth:`prepare` must have an int
    attribute ``threads`` (intra-op threads per shard)."""

    def section(self, params: TrainingParams) -> Any:
        """The workload's section ``training.<name>``, as its typed ``params_type``."""
        return self.params_type.model_validate(getattr(params, self.name, None) or {})

    @abc.abstractmethod
    def cells(self, params: TrainingParams) -> int:
        """How many cells (trials) the sweep has (checked against ``execution.max_trials``)."""

    def validate(self, spec: CampaignSpec, params: TrainingParams) -> None:  # noqa: B027
        """Deep checks (datasets exist, options fit); raise :class:`SpecError`."""

    @abc.abstractmethod
    def prepare(self, spec: CampaignSpec, params: TrainingParams) -> Prepared:
        """Loads the data once per campaign (``meta`` needs ``model_digest`` and
        ``dataset_digest``)."""

    @abc.abstractmethod
    def plan(self, spec: CampaignSpec, params: TrainingParams,
             meta: dict[str, Any]) -> list[dict[str, Any]]:
        """Every cell's trial (round 0 only)."""

    @abc.abstractmethod
    def aggregate(self, engine: Engine[Any], spec: CampaignSpec, meta: dict[str, Any],
                  records: list[TrialRecord]) -> Report:
        """The campaign's report (``summary["workload"]`` = the name, for the plots)."""


WORKLOADS: Registry[Workload] = Registry(
    "training workload", "faultlab.workers.training.workloads", "training.workload")
"""Every training workload, by name (its modules are imported on first read)."""


def workload(name: str) -> Workload:
    """The registered workload ``name`` (unknown: :class:`SpecError` on ``training.workload``)."""
    return WORKLOADS.get(name).impl


def workload_of_trial(trial: dict[str, Any]) -> Workload:
    """The workload a trial belongs to (graph trials carry no ``workload`` key)."""
    return workload(str(trial.get("workload", "graph")))


def sweep_workload(params: TrainingParams) -> SweepWorkload | None:
    """The workload of ``params`` when it plans its own sweep (None for ``graph``: the
    engine's built-in path)."""
    found = workload(params.workload)
    return found if isinstance(found, SweepWorkload) else None


def workload_for_family(family: str) -> Workload | None:
    """The workload whose models include ``training:<family>``, if any."""
    for method in WORKLOADS.entries().values():
        if family in method.impl.families:
            return method.impl
    return None


def load_training_dataset(name: str, options: dict[str, Any], field: str, task: str,
                          data_type: type) -> Any:
    """The zoo dataset a sweep names at ``field`` (e.g. ``training.datasets.0``), of type
    ``data_type``; a zoo error names ``field`` instead of the top-level ``dataset``."""
    from faultlab.errors import SpecError
    from faultlab.spec import DatasetSpec
    from faultlab.workers.zoo import load_dataset

    try:
        data = load_dataset(DatasetSpec(name=name, options=options), task=task)
    except SpecError as exc:
        raise SpecError(exc.field.replace("dataset", field, 1), exc.problem,
                        exc.allowed) from None
    if not isinstance(data, data_type):
        raise SpecError(f"{field}.name", f"must be a{'n' if task[0] in 'aeiou' else ''} "
                        f"{task} dataset")
    return data


__all__ = ["WORKLOADS", "OnPoint", "SweepWorkload", "Workload", "load_training_dataset",
           "sweep_workload", "workload", "workload_for_family", "workload_of_trial"]
