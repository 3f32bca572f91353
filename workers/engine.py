"""The shape every engine has: ``validate → prepare → plan → run_shard → aggregate``.

* ``validate(spec)`` — deep checks that need the model's structure (layer names, shapes),
  run by the coordinator before any Ray work; raise :class:`~faultlab.errors.SpecError`.
* ``prepare(spec)`` — runs once per campaign inside a Ray task: loads/trains the zoo model,
  loads data, computes the golden (fault-free) reference. Returns a :class:`Prepared`:
  ``context`` stays in Ray's object store and is handed to every shard; ``meta`` is small,
  JSON-able, and goes to the coordinator for planning and aggregation.
* ``plan(spec, meta, round_index, previous)`` — the trials of planning round ``round_index``
  given every record of the earlier rounds; ``[]`` ends the campaign. One-shot engines return
  everything in round 0; adaptive ones (stop a stratum once its CI is narrow enough) plan
  more rounds. Must be deterministic in its inputs: recovery replays it.
* ``run_shard(context, trials)`` — one result dict per trial, same order. Outcome-level
  failures of a trial (NaN, exception inside the faulty model) are results, not errors;
  an exception here means a system failure and the shard is retried.
* ``aggregate(spec, meta, records)`` — the campaign's :class:`~faultlab.report.Report`.

Trials and results are plain JSON-able dicts. A trial must hold everything needed to
replay it (fault description, input ids, seed).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar, Generic, TypeVar

import torch
from pydantic import BaseModel

from faultlab import hashing
from faultlab.errors import SpecError
from faultlab.report import Report
from faultlab.spec import CampaignSpec
from faultlab.version import code_version
from faultlab.workers import torch_compat  # noqa: F401 - patches torch before any unpickling

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial as stored: its content key, definition and result."""

    key: str
    trial: dict[str, Any]
    result: dict[str, Any]
    attempts: int = 1


@dataclass
class Prepared:
    """What ``prepare`` returns. ``meta`` must hold ``model_digest`` and ``dataset_digest``."""

    context: Any
    meta: dict[str, Any] = field(default_factory=dict)


class Engine(abc.ABC, Generic[P]):
    """Base class of the engines: the five steps above, plus what every engine shares.

    A subclass names its campaign ``kind``, its ``version`` and its ``params_type`` (the
    pydantic model of its spec section, the one :mod:`faultlab.kinds` names), and
    implements the abstract steps. The base owns the rest, so it is written once:

    * :meth:`params` — ``spec.params`` as the engine's own typed model;
    * :meth:`trial_key` / :meth:`keyed` — a trial's content key (the cache key);
    * :meth:`provenance` — the provenance block of every report;
    * :meth:`outcomes_equal` — whether a replayed result reproduces the stored one.

    **Engine version.** ``version`` is a decimal counter as a string (``"1"``, ``"2"``, …),
    bumped whenever a change alters results. It is part of every trial's cache key (next to
    the kind, which is why the kind is not repeated in it), so a bump makes every stored
    result of the kind stale, and nothing else does.
    """

    kind: ClassVar[str]
    version: ClassVar[str]
    params_type: type[P]
    """The pydantic model of the kind's spec section (``spec.params`` is one)."""

    #: Result keys compared by :meth:`outcomes_equal` besides timings: where a cached
    #: artifact came from is provenance, not an outcome.
    provenance_fields: ClassVar[frozenset[str]] = frozenset()

    #: Whether ``run_shard`` sends live records (:func:`faultlab.workers.progress.emit`);
    #: the coordinator opens a progress channel only for such engines.
    streams_progress: ClassVar[bool] = False

    def params(self, spec: CampaignSpec) -> P:
        """``spec.params``, typed as this engine's params model."""
        params = spec.params
        if not isinstance(params, self.params_type):
            raise SpecError(
                "kind",
                f"the {self.kind} engine needs a {self.params_type.__name__} section, got "
                f"{type(params).__name__} (kind {spec.kind!r})",
                [self.kind],
            )
        return params

    def to_device(self, context: Any, device: torch.device) -> Any:
        """``context`` with its tensors and modules on ``device`` (called once per worker and
        campaign); the default keeps the context where ``prepare`` built it (on the CPU)."""
        return context

    def validate(self, spec: CampaignSpec) -> None:  # noqa: B027 - optional hook
        """Deep checks needing the model's structure; the default has none."""

    def max_rounds(self, spec: CampaignSpec) -> int | None:
        """How many planning rounds ``spec`` can have at most (None: decided by ``plan``).

        One-shot plans return 1, which spares the coordinator loading every record only to
        hear that there is no second round.
        """
        return None

    def round_size(
        self,
        spec: CampaignSpec,
        meta: dict[str, Any],
        round_index: int,
        previous: list[TrialRecord],
    ) -> int | None:
        """How many trials :meth:`iter_plan` will make for this round, where the engine knows
        it before making them (None: unknown). A known size lets the coordinator run the
        round's first shards while the rest of it is still being planned and stored, and
        refuse an oversized round before anything is stored. It must equal the count
        ``iter_plan`` then yields (the coordinator checks)."""
        return None

    @abc.abstractmethod
    def prepare(self, spec: CampaignSpec) -> Prepared:
        """Loads the campaign's workload; ``spec`` has been validated already (not again)."""

    @abc.abstractmethod
    def plan(
        self,
        spec: CampaignSpec,
        meta: dict[str, Any],
        round_index: int,
        previous: list[TrialRecord],
    ) -> list[dict[str, Any]]: ...

    def iter_plan(
        self,
        spec: CampaignSpec,
        meta: dict[str, Any],
        round_index: int,
        previous: list[TrialRecord],
    ) -> Iterator[dict[str, Any]]:
        """:meth:`plan`'s trials one at a time, in the same order: the coordinator packs them
        as they come, so an engine that makes them lazily never has a whole round of dicts
        in memory. The default iterates :meth:`plan`."""
        return iter(self.plan(spec, meta, round_index, previous))

    @abc.abstractmethod
    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def aggregate(
        self, spec: CampaignSpec, meta: dict[str, Any], records: list[TrialRecord]
    ) -> Report: ...

    def aggregate_pages(
        self, spec: CampaignSpec, meta: dict[str, Any], pages: Iterable[list[TrialRecord]]
    ) -> Report:
        """:meth:`aggregate` over records that arrive a page at a time (the coordinator reads
        a campaign's results so). An engine whose report reduces each page to something
        smaller than its records overrides it, so that a large campaign's report never holds
        every result at once; the default joins the pages."""
        return self.aggregate(spec, meta, [r for page in pages for r in page])

    def trial_key(self, spec: CampaignSpec, meta: dict[str, Any], trial: dict[str, Any]) -> str:
        """The content key of ``trial``: sha256 of its canonical JSON together with the model
        and dataset digests of ``meta`` and this engine's kind and version."""
        if spec.kind != self.kind:
            raise ValueError(f"a {spec.kind!r} spec given to the {self.kind!r} engine")
        return hashing.trial_key(
            trial,
            kind=self.kind,
            engine_version=self.version,
            model_digest=meta["model_digest"],
            dataset_digest=meta["dataset_digest"],
        )

    def keyed(
        self, spec: CampaignSpec, meta: dict[str, Any], trials: list[dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(content key, trial)`` pairs, as the coordinator stores them."""
        return [(self.trial_key(spec, meta, t), t) for t in trials]

    def provenance(self, spec: CampaignSpec, meta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """The provenance block of the campaign's report; ``extra`` adds engine-specific
        entries (the fault engine's per-workload digests, the sparsity calibration sample)."""
        return {
            "spec_hash": spec.spec_hash,
            "code_version": code_version(),
            "seed": spec.seed,
            "engine": self.kind,
            "engine_version": self.version,
            "model_digest": meta["model_digest"],
            "dataset_digest": meta["dataset_digest"],
            **extra,
        }

    def outcomes_equal(self, stored: dict[str, Any], replayed: dict[str, Any]) -> bool:
        """Whether a replayed result reproduces the stored one: equal at every depth, ignoring
        timings (keys ending in ``_seconds``) and :attr:`provenance_fields`."""
        return self._outcome(stored) == self._outcome(replayed)

    def _outcome(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: self._outcome(v)
                for k, v in value.items()
                if not str(k).endswith("_seconds") and k not in self.provenance_fields
            }
        if isinstance(value, list):
            return [self._outcome(v) for v in value]
        return value


def shard_device() -> torch.device:
    """The device Ray assigned to this task: its first GPU when Ray gave it one and CUDA is
    usable here, else the CPU. (Ray sets ``CUDA_VISIBLE_DEVICES`` to the task's GPUs, so the
    task's first GPU is always ``cuda:0`` inside the worker.)"""
    try:
        import ray

        gpus = ray.get_gpu_ids() if ray.is_initialized() else []
    except Exception:  # noqa: BLE001 - outside a Ray worker: no GPU was assigned
        gpus = []
    if gpus and torch.cuda.is_available():
        return torch.device("cuda", 0)
    return torch.device("cpu")


def configure_device(device: torch.device, allow_tf32: bool) -> None:
    """Numerics of the shards on ``device``: TF32 matmuls/convolutions only when the spec
    allows them (``execution.allow_tf32``), deterministic algorithms where torch has them
    (cuDNN autotuning off, deterministic cuBLAS workspaces; ``warn_only`` for the ops without
    a deterministic kernel)."""
    if device.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def move_to(value: Any, device: torch.device) -> Any:
    """``value`` with every tensor and module inside it on ``device``: tensors, modules,
    PyG ``Data`` graphs, dicts, lists, tuples and dataclasses are walked; anything else is kept
    as it is. Modules move in place (``Module.to``); a tensor already there is returned
    unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, torch.nn.Module):
        return value.to(device)
    if type(value).__module__.startswith("torch_geometric.data"):
        return value.to(device)
    if isinstance(value, dict):
        return {k: move_to(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [move_to(v, device) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(move_to(v, device) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: move_to(getattr(value, f.name), device)
                   for f in fields(value) if f.init}
        return replace(value, **changes)
    return value


def device_boundary(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` with its parameters on ``device`` and its forward computed there, called with
    and answering tensors on the CPU: a root pre-hook moves the inputs to ``device``, a root
    hook moves the output back (autograd follows both moves, so training works too). Engines
    whose trial code around the model (triggers, numpy statistics) is CPU code put only the
    model's compute on the device this way. In place; the CPU is a no-op. Hooks travel with
    ``copy.deepcopy``."""
    if device.type == "cpu":
        return model

    def inputs(module: torch.nn.Module, args: Any) -> Any:
        return move_to(tuple(args), device)

    def outputs(module: torch.nn.Module, args: Any, out: Any) -> Any:
        return move_to(out, torch.device("cpu"))

    model.to(device)
    model.register_forward_pre_hook(inputs)
    model.register_forward_hook(outputs)
    return model
