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
* **Event log with cursors.** Events of a campaign are typed (:mod:`faultlab.events`) and
  totally ordered; ``read_events`` returns those strictly after a cursor (opaque string,
  ``""`` = from the start), so a reader that resumes from its last cursor misses nothing and
  sees nothing twice. A string that is not a cursor raises
  :class:`~faultlab.errors.ArgumentError`.
* **Reads by key.** ``trial`` reads one trial, ``done_keys`` the DONE keys and
  ``campaign_results`` one page of DONE trials, each without loading the whole campaign;
  ``result_texts`` pages them by plan index (keyset paging, O(page) at any depth) as text.
* **Artifacts.** Uploaded files, content-addressed by ``sha256:<hex>`` and owned per tenant:
  the same content uploaded by two tenants is two records, and another tenant's artifact is
  absent (``stat_artifact`` answers None, ``read_artifact`` NotFoundError). ``put_artifact``
  verifies the content against the declared digest and size before the record exists, stores
  it in chunks of at most :data:`ARTIFACT_CHUNK` bytes (no row or value is huge), refuses an
  artifact over ``max_bytes`` or a tenant over ``quota_bytes`` with a
  :class:`~faultlab.errors.ResourceExhaustedError` naming the limit, and makes the record
  visible in one atomic step (a half-written artifact is never seen).
* **Final states fence trial writes.** ``add_trials``, ``mark_running``, ``mark_failed`` and
  ``record_results`` check, in the same transaction or script, that the campaign is still
  QUEUED or RUNNING, and write nothing otherwise: once terminal, no trial, result, trial event
  or progress event is recorded.
* **Atomic per-tenant limit.** ``create_campaign(record, max_active=N)`` counts the owner's
  non-terminal campaigns and inserts in one atomic step, raising
  :class:`~faultlab.errors.ResourceExhaustedError` at the limit.
* **Coordinator lease and fencing.** ``acquire_lease`` gives one holder at a time a lease
  (SQLite lock row / Redis key with a TTL) and a fencing token that grows with every change
  of holder; every later write of *this* store object checks, in its own transaction or
  script, that the token is still the store's, else raises :class:`LeaseLostError`. A store
  that never took a lease writes unfenced (tools, tests). Artifacts are fenced too.
* **Unreachable backend** raises :class:`~faultlab.errors.UnavailableError`.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from faultlab.errors import ArgumentError, FailedPreconditionError, ResourceExhaustedError
from faultlab.events import CampaignEvent, StoredEvent
from faultlab.server.store.artifact_checks import (  # re-exported: the stores import them here
    ARTIFACT_CHUNK as ARTIFACT_CHUNK,
)
from faultlab.server.store.artifact_checks import (
    check_artifact_limits as check_artifact_limits,
)
from faultlab.server.store.artifact_checks import quota_exceeded as quota_exceeded
from faultlab.server.store.artifact_checks import verified_chunks as verified_chunks
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
class Lease:
    """The coordinator lease on a store, as stored."""

    holder: str
    token: int
    """Fencing token: grows by one each time the lease changes hands."""
    expires: float
    """Wall-clock time when the lease lapses unless renewed."""


class LeaseLostError(FailedPreconditionError):
    """A write by a coordinator whose lease on the store another coordinator has taken."""


def active_limit_reached(owner: str, limit: int) -> ResourceExhaustedError:
    """The error of a submission over the tenant's limit of non-terminal campaigns."""
    return ResourceExhaustedError(
        f"tenant {owner!r} already has {limit} active campaigns; wait for one to finish or "
        "cancel one"
    )


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
class ResultText:
    """A DONE trial as stored text: a result page sends it on without decoding it."""

    key: str
    index: int
    """Position in plan order: a page ends where the next one starts."""
    attempts: int
    trial_json: str
    result_json: str


@dataclass(frozen=True)
class ResultItem:
    """One trial outcome to record."""

    key: str
    result: dict[str, Any]
    cached: bool = False
    """True when the result came from the content-addressed cache (not computed now)."""


@dataclass(frozen=True)
class ArtifactInfo:
    """An uploaded artifact as stored: its digest, size and owner."""

    digest: str
    """``sha256:<hex>`` of the content."""
    size: int
    owner: str
    created: float
    name: str = ""
    """The client's file name (informative only; never used as a path)."""


def leavable_states(expected: Collection[CampaignState]) -> list[str]:
    """The states a ``transition`` may move away from: ``expected`` without terminal states,
    so a terminal state is never left even when a caller lists one."""
    return [s.value for s in map(CampaignState, expected) if not s.is_terminal()]


class Store(abc.ABC):
    """Persistence for the coordinator. Methods are synchronous and thread-safe."""

    fence_token: int = 0
    """The lease token this store object fences its writes with (0: unfenced)."""

    # --- campaigns -------------------------------------------------------------------
    @abc.abstractmethod
    def create_campaign(
        self, record: CampaignRecord, max_active: int | None = None
    ) -> tuple[CampaignRecord, bool]:
        """Inserts a QUEUED campaign and its ``state`` event.

        Idempotent on ``(owner, request_id)`` when ``request_id`` is non-empty: a second
        call returns the first campaign and ``False`` (before any limit is checked). With
        ``max_active``, raises :func:`active_limit_reached` when the owner already has that
        many non-terminal campaigns, counted in the same atomic step as the insert.
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
        """Compare-and-set the state; appends ``StateEvent(new, message)``.

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
    def trial(self, campaign_id: str, key: str) -> TrialRow | None:
        """One trial of the campaign by key (None when the campaign has no such trial)."""

    @abc.abstractmethod
    def done_keys(self, campaign_id: str) -> set[str]:
        """The keys of the campaign's DONE trials."""

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
        at least 1); ``trials_done += 1`` (and ``trials_cached`` when ``cached``); a
        ``TrialEvent``. Then, if any were new, one ``ProgressEvent`` with the counters.
        """

    @abc.abstractmethod
    def campaign_results(
        self, campaign_id: str, offset: int = 0, limit: int | None = None
    ) -> list[tuple[TrialRow, dict[str, Any]]]:
        """DONE trials with their results, in plan order, paginated; reads only the page."""

    @abc.abstractmethod
    def result_texts(
        self, campaign_id: str, start_index: int = 0, limit: int = 500
    ) -> list[ResultText]:
        """At most ``limit`` DONE trials whose plan index is ``>= start_index``, in plan order,
        as stored text. A page costs O(limit) however far into the campaign it starts (the
        next page starts at the index after the last row), so exporting N results is O(N)."""

    # --- events ----------------------------------------------------------------------
    @abc.abstractmethod
    def append_event(self, campaign_id: str, event: CampaignEvent) -> str:
        """Appends an event and returns its cursor."""

    @abc.abstractmethod
    def read_events(
        self, campaign_id: str, after: str = "", limit: int = 500, timeout: float = 0.0
    ) -> list[StoredEvent]:
        """Events strictly after ``after``; waits up to ``timeout`` seconds for the first one."""

    # --- artifacts -------------------------------------------------------------------
    @abc.abstractmethod
    def put_artifact(
        self,
        owner: str,
        digest: str,
        chunks: Iterable[bytes],
        *,
        declared_size: int,
        max_bytes: int,
        quota_bytes: int,
        name: str = "",
    ) -> ArtifactInfo:
        """Stores ``owner``'s artifact from ``chunks`` (see the module docstring).

        Idempotent: when ``owner`` already has ``digest`` it returns that record and reads
        no chunk. Raises ResourceExhaustedError (limit named), ArgumentError on ``sha256`` /
        ``size`` when the content does not match what was declared.
        """

    @abc.abstractmethod
    def stat_artifact(self, owner: str, digest: str) -> ArtifactInfo | None:
        """``owner``'s artifact, or None (absent, or another tenant's)."""

    @abc.abstractmethod
    def read_artifact(self, owner: str, digest: str) -> bytes:
        """The content of ``owner``'s artifact; NotFoundError("artifact", digest) otherwise."""

    # --- coordinator lease -----------------------------------------------------------
    @abc.abstractmethod
    def acquire_lease(self, holder: str, ttl: float, *, steal: bool = False) -> int:
        """Takes the lease for ``ttl`` seconds and fences this store's writes with it.

        Returns the new fencing token, or 0 (nothing written) while another holder's lease is
        live, unless ``steal`` (its holder is known to be dead).
        """

    @abc.abstractmethod
    def renew_lease(self, holder: str, token: int, ttl: float) -> bool:
        """Extends the lease by ``ttl`` seconds from now; False once another holder took it
        (a lapsed lease nobody took is renewed: its token is still the store's)."""

    @abc.abstractmethod
    def lease(self) -> Lease | None:
        """The live lease, or None when none is held."""

    @abc.abstractmethod
    def release_lease(self, token: int) -> None:
        """Ends the lease if ``token`` still holds it (the token only ever grows)."""

    # --- lifecycle -------------------------------------------------------------------
    @abc.abstractmethod
    def ping(self) -> None:
        """Raises UnavailableError when the backend cannot be reached."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections."""


def open_store(url: str) -> Store:
    """``sqlite:///path/to/file.db``, ``sqlite://:memory:`` or ``redis://host:port/db[?prefix=p]``."""
    if url.startswith("sqlite://"):
        from faultlab.server.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite://")
        return SqliteStore(":memory:" if path in {":memory:", "/:memory:"} else path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from faultlab.server.store.redis import RedisStore

        return RedisStore(url)
    raise ArgumentError(
        "store", f"unsupported store URL {url!r}", ["sqlite:///PATH", "redis://HOST:PORT/DB"]
    )
