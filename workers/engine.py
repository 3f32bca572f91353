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
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from faultlab.report import Report
from faultlab.spec import CampaignSpec

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
    """Base class of the four engines (faults, sparsity, watermark, sampling)."""

    kind: ClassVar[str]
    #: Bumped whenever a change alters results: part of every trial's cache key.
    version: ClassVar[str]

    def validate(self, spec: CampaignSpec) -> None:  # noqa: B027 - optional hook
        """Deep checks needing the model's structure; the default has none."""

    def max_rounds(self, spec: CampaignSpec) -> int | None:
        """How many planning rounds ``spec`` can have at most (None: decided by ``plan``).

        One-shot plans return 1, which spares the coordinator loading every record only to
        hear that there is no second round.
        """
        return None

    @abc.abstractmethod
    def prepare(self, spec: CampaignSpec) -> Prepared: ...

    @abc.abstractmethod
    def plan(
        self,
        spec: CampaignSpec,
        meta: dict[str, Any],
        round_index: int,
        previous: list[TrialRecord],
    ) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def aggregate(
        self, spec: CampaignSpec, meta: dict[str, Any], records: list[TrialRecord]
    ) -> Report: ...

    def outcomes_equal(self, stored: dict[str, Any], replayed: dict[str, Any]) -> bool:
        """Whether a replayed result reproduces the stored one (timings are ignored)."""
        def strip(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in d.items() if not k.endswith("_seconds")}

        return strip(stored) == strip(replayed)
