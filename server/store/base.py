"""The store contract: campaigns, trials, content-addressed results and event logs.

Two backends implement it: :class:`~faultlab.server.store.sqlite.SqliteStore` (embedded
default, one machine) and :class:`~faultlab.server.store.redis.RedisStore` (cluster).
One contract test suite (``tests/server/test_store_contract.py``) runs against both.

Rules every backend keeps:

* **Guarded transitions.** ``transition`` is a compare-and-set: it only writes when the
  campaign's current state is one of ``expected``; terminal states therefore never change.
  The state change and its ``state`` event are written in one atomic step.
* **Content-addressed results.** ``result:{key}`` is shared by all campaigns: a trial whose
  key has a result is never recomputed (``lookup_results``).
* **Atomic, idempotent recording.** ``record_results`` writes, per item and in one atomic
  step, the result (if absent), the trial's DONE state in the campaign and a ``trial`` event,
  then one ``progress`` event. An item whose trial is already DONE in that campaign is
  skipped entirely, so a retried or recovered shard never doubles a trial or its event.
* **Event log with cursors.** Events of a campaign are totally ordered; ``read_events`` returns
  those strictly after a cursor (opaque string, ``""`` = from the start), so a reader that
  resumes from its last cursor misses nothing and sees nothing twice.
* **Unreachable backend** raises :class:`~faultlab.errors.UnavailableError`.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from faultlab.states import CampaignState, TrialState


@dataclass(frozen=True)
class CampaignRecord:
    """A campaign as stored. Counters are maintained by the store."""

    id: str
    owner: str
    kind: str
    name: str
    spec_json: str
    spec_hash: str
    seed: int
    code_version: str
    state: CampaignState = CampaignState.QUEUED
    request_id: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    error: str = ""
    trials_total: int = 0
    trials_done: int = 0
    trials_cached: int = 0
    trials_failed: int = 0
    meta_json: str = ""
    """Engine metadata from ``prepare`` (digests, planning info), kept for aggregation."""

    def with_(self, **changes: Any) -> CampaignRecord:
        return replace(self, **changes)


@dataclass(frozen=True)
class TrialRow:
    """A trial's membership in a campaign."""

    key: str
    index: int
    """Position in plan order (0, 1, 2, ... across planning rounds)."""
    round: int
    state: TrialState
    attempts: int
    trial: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class ResultItem:
    """One trial outcome to record."""

    key: str
    result: dict[str, Any]
    cached: bool = False
    """True when the result came from the content-addressed cache (not computed now)."""


@dataclass(frozen=True)
class StoredEvent:
    cursor: str
    time: float
    data: dict[str, Any]
    """``{"type": "state"|"progress"|"trial"|"log", ...}`` (see servicer for the fields)."""


def leavable_states(expected: Collection[CampaignState]) -> list[str]:
    """The states a ``transition`` may move away from: ``expected`` without terminal states,
    so a terminal state is never left even when a caller lists one."""
    return [s.value for s in map(CampaignState, expected) if not s.is_terminal()]


class Store(abc.ABC):
    """Persistence for the coordinator. Methods are synchronous and thread-safe."""

    # --- campaigns -------------------------------------------------------------------
    @abc.abstractmethod
    def create_campaign(self, record: CampaignRecord) -> tuple[CampaignRecord, bool]:
        """Inserts a QUEUED campaign and its ``state`` event.

        Idempotent on ``(owner, request_id)`` when ``request_id`` is non-empty: a second
        call returns the first campaign and ``False``.
        """

    @abc.abstractmethod
    def get_campaign(self, campaign_id: str) -> CampaignRecord | None: ...

    @abc.abstractmethod
    def list_campaigns(
        self, owner: str | None, limit: int, offset: int = 0
    ) -> list[CampaignRecord]:
        """Newest first (by ``created_at``, then id). ``owner=None`` lists every tenant."""

    @abc.abstractmethod
    def active_campaigns(self) -> list[CampaignRecord]:
        """Every campaign in QUEUED or RUNNING (for recovery), oldest first."""

    @abc.abstractmethod
    def transition(
        self,
        campaign_id: str,
        expected: Collection[CampaignState],
        new: CampaignState,
        *,
        error: str = "",
        message: str = "",
    ) -> bool:
        """Compare-and-set the state; appends ``{"type":"state","state":new,"message":...}``.

        Returns False (and writes nothing) when the current state is not in ``expected``.
        """

    @abc.abstractmethod
    def set_meta(self, campaign_id: str, meta_json: str) -> None:
        """Stores the engine's ``prepare`` metadata."""

    # --- trials ----------------------------------------------------------------------
    @abc.abstractmethod
    def add_trials(
        self, campaign_id: str, round_index: int, trials: Sequence[tuple[str, dict[str, Any]]]
    ) -> int:
        """Adds ``(key, trial)`` pairs as PENDING, after the existing ones in plan order.

        Keys already in the campaign are ignored (idempotent; recovery re-plans). Updates
        ``trials_total``. Returns how many were new.
        """

    @abc.abstractmethod
    def trials(
        self, campaign_id: str, states: Collection[TrialState] | None = None
    ) -> list[TrialRow]:
        """The campaign's trials in plan order, optionally filtered by state."""

    @abc.abstractmethod
    def mark_running(self, campaign_id: str, keys: Sequence[str]) -> None:
        """PENDING/RUNNING/FAILED → RUNNING and ``attempts += 1`` (DONE trials untouched)."""

    @abc.abstractmethod
    def mark_failed(self, campaign_id: str, keys: Sequence[str], error: str) -> None:
        """Non-DONE trials → FAILED with the error; updates ``trials_failed``."""

    @abc.abstractmethod
    def reset_running(self, campaign_id: str) -> int:
        """RUNNING → PENDING (after a coordinator restart). Returns how many."""

    # --- results ---------------------------------------------------------------------
    @abc.abstractmethod
    def lookup_results(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Content-addressed cache: the stored result of each key that has one."""

    @abc.abstractmethod
    def record_results(self, campaign_id: str, items: Sequence[ResultItem]) -> int:
        """Atomically records results (see module docstring). Returns how many were new.

        Per new item: result stored under its key if absent; trial → DONE (``attempts`` kept,
        at least 1); ``trials_done += 1`` (and ``trials_cached`` when ``cached``); event
        ``{"type":"trial","key","trial","result","cached"}``. Then, if any were new, one
        ``{"type":"progress","done","total","cached","failed"}`` event.
        """

    @abc.abstractmethod
    def campaign_results(
        self, campaign_id: str, offset: int = 0, limit: int | None = None
    ) -> list[tuple[TrialRow, dict[str, Any]]]:
        """DONE trials with their results, in plan order, paginated."""

    # --- events ----------------------------------------------------------------------
    @abc.abstractmethod
    def append_event(self, campaign_id: str, data: dict[str, Any]) -> str:
        """Appends an event and returns its cursor."""

    @abc.abstractmethod
    def read_events(
        self, campaign_id: str, after: str = "", limit: int = 500, timeout: float = 0.0
    ) -> list[StoredEvent]:
        """Events strictly after ``after``; waits up to ``timeout`` seconds for the first one."""

    # --- lifecycle -------------------------------------------------------------------
    @abc.abstractmethod
    def ping(self) -> None:
        """Raises UnavailableError when the backend cannot be reached."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections."""


def open_store(url: str) -> Store:
    """``sqlite:///path/to/file.db``, ``sqlite://:memory:`` or ``redis://host:port/db[?prefix=p]``."""
    from faultlab.errors import SpecError

    if url.startswith("sqlite://"):
        from faultlab.server.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite://")
        return SqliteStore(":memory:" if path in {":memory:", "/:memory:"} else path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from faultlab.server.store.redis import RedisStore

        return RedisStore(url)
    raise SpecError("store", f"unsupported store URL {url!r}", ["sqlite:///PATH", "redis://HOST:PORT/DB"])
