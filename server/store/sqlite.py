"""SQLite store: the embedded default, one file on one machine.

The schema and row mapping live in ``sqlite_schema.py``, the trial-state writes in
``sqlite_trials.py``; this module owns the connection, the lock and the transactions.

Layout (one database file, WAL journal):

* ``campaigns`` — one row per :class:`CampaignRecord` (counters included); a partial unique
  index on ``(owner, request_id)`` makes submission idempotent per tenant.
* ``trials`` — ``(campaign_id, key)`` primary key; ``idx`` is the plan-order position,
  ``trial_json`` the replayable trial, ``state`` / ``attempts`` / ``error`` its progress.
* ``results`` — ``key`` primary key → ``result_json``: the content-addressed cache, shared
  by every campaign.
* ``events`` — ``seq INTEGER PRIMARY KEY AUTOINCREMENT``; the cursor is ``str(seq)``.
  AUTOINCREMENT guarantees a sequence number is never reused, so cursors stay valid.
* ``artifacts`` / ``artifact_chunks`` — uploaded files in chunks (``sqlite_artifacts.py``).
* ``lease`` — the one coordinator lease row (``sqlite_lease.py``): every write transaction of
  a store that holds a lease first checks that the row's token is still its own.

Atomicity: one connection guarded by a lock; every write runs inside ``BEGIN IMMEDIATE``
… ``COMMIT``, so a result, its trial's DONE state, the counters and the events land together
or not at all — also when the process is killed with ``kill -9`` mid-write (the WAL rolls
the torn transaction back on the next open, by this or another process). ``synchronous =
NORMAL`` keeps every committed transaction across a process crash; only a power loss can
drop the last few, never corrupt the file. A reader waiting for events wakes as soon as a
write of this process commits (a condition variable), and polls for other processes' writes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from faultlab.errors import ArgumentError, UnavailableError
from faultlab.events import CampaignEvent, StateEvent, StoredEvent
from faultlab.server.store import sqlite_lease, sqlite_trials
from faultlab.server.store.base import (
    ArtifactInfo,
    CampaignRecord,
    Lease,
    ResultItem,
    ResultText,
    Store,
    TrialRow,
    active_limit_reached,
    leavable_states,
)
from faultlab.server.store.sqlite_artifacts import ARTIFACT_SCHEMA, SqliteArtifacts
from faultlab.server.store.sqlite_schema import (
    CAMPAIGN_COLUMNS,
    SCHEMA,
    TRIAL_COLUMNS,
    UNAVAILABLE_ERRORS,
    append_event,
    campaign_record,
    placeholders,
    stored_event,
    trial_row,
)
from faultlab.states import ACTIVE_STATES, CampaignState, TrialState

_POLL_INTERVAL_S = 0.05
_LOOKUP_CHUNK = 500  # stays far below SQLite's bound on host parameters per statement


class SqliteStore(Store):
    """The store in one SQLite file (``":memory:"`` for a throw-away store)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._committed = threading.Condition()
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(SCHEMA + ARTIFACT_SCHEMA + sqlite_lease.LEASE_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UnavailableError(f"cannot open SQLite store {path!r}: {exc}") from exc
        self._artifacts = SqliteArtifacts(self._reading, self._writing)

    # --- connection helpers ----------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._mapped_errors():
            yield self._db

    @contextlib.contextmanager
    def _writing(self, fenced: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, fenced by this store's lease token; rolled back on any
        error."""
        with self._lock, self._mapped_errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if fenced and self.fence_token:
                    sqlite_lease.check_fence(self._db, self.fence_token)
                yield self._db
            except BaseException:
                # Some errors (SQLITE_FULL, SQLITE_IOERR) already rolled the transaction back.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        with self._committed:
            self._committed.notify_all()

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name.startswith(UNAVAILABLE_ERRORS):
                raise UnavailableError(f"SQLite store {self.path!r} unavailable: {exc}") from exc
            raise

    # --- campaigns -------------------------------------------------------------------
    def create_campaign(
        self, record: CampaignRecord, max_active: int | None = None
    ) -> tuple[CampaignRecord, bool]:
        now = time.time()
        record = record.with_(
            state=CampaignState.QUEUED,
            created_at=record.created_at or now,
            updated_at=now,
            error="",
            trials_total=0,
            trials_done=0,
            trials_cached=0,
            trials_failed=0,
        )
        with self._writing() as db:
            existing = db.execute(
                f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ? "
                "OR (request_id != '' AND owner = ? AND request_id = ?)",
                (record.id, record.owner, record.request_id),
            ).fetchone()
            if existing is not None:
                return campaign_record(existing), False
            if max_active is not None:
                self._check_active(db, record.owner, max_active)
            db.execute(
                f"INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) VALUES ({placeholders(18)})",
                (
                    record.id, record.owner, record.kind, record.name, record.spec_json,
                    record.spec_hash, record.seed, record.code_version, record.state.value,
                    record.request_id, record.created_at, record.updated_at, record.error,
                    record.trials_total, record.trials_done, record.trials_cached,
                    record.trials_failed, record.meta_json,
                ),
            )  # fmt: skip
            append_event(db, record.id, now, StateEvent(CampaignState.QUEUED))
        return record, True

    @staticmethod
    def _check_active(db: sqlite3.Connection, owner: str, limit: int) -> None:
        states = [s.value for s in ACTIVE_STATES]
        (count,) = db.execute(
            "SELECT COUNT(*) FROM campaigns WHERE owner = ? "
            f"AND state IN ({placeholders(len(states))})",
            (owner, *states),
        ).fetchone()
        if count >= limit:
            raise active_limit_reached(owner, limit)

    def get_campaign(self, campaign_id: str) -> CampaignRecord | None:
        with self._reading() as db:
            row = db.execute(
                f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
            ).fetchone()
        return None if row is None else campaign_record(row)

    def list_campaigns(
        self, owner: str | None, limit: int, offset: int = 0
    ) -> list[CampaignRecord]:
        where, args = ("WHERE owner = ?", [owner]) if owner is not None else ("", [])
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns {where} "
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (*args, max(limit, 0), max(offset, 0)),
            ).fetchall()
        return [campaign_record(r) for r in rows]

    def active_campaigns(self) -> list[CampaignRecord]:
        states = [s.value for s in ACTIVE_STATES]
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns "
                f"WHERE state IN ({placeholders(len(states))}) ORDER BY created_at, id",
                states,
            ).fetchall()
        return [campaign_record(r) for r in rows]

    def transition(
        self,
        campaign_id: str,
        expected: Collection[CampaignState],
        new: CampaignState,
        *,
        error: str = "",
        message: str = "",
    ) -> bool:
        states = leavable_states(expected)
        if not states:
            return False
        now = time.time()
        with self._writing() as db:
            cur = db.execute(
                "UPDATE campaigns SET state = ?, updated_at = ?, "
                "error = CASE WHEN ? = '' THEN error ELSE ? END "
                f"WHERE id = ? AND state IN ({placeholders(len(states))})",
                (new.value, now, error, error, campaign_id, *states),
            )
            if cur.rowcount == 0:
                return False
            append_event(db, campaign_id, now, StateEvent(new, message))
        return True

    def set_meta(self, campaign_id: str, meta_json: str) -> None:
        with self._writing() as db:
            db.execute(
                # A terminal campaign's updated_at is its end: its status never changes again.
                "UPDATE campaigns SET meta_json = ?, updated_at = CASE WHEN state IN "
                "('QUEUED', 'RUNNING') THEN ? ELSE updated_at END WHERE id = ?",
                (meta_json, time.time(), campaign_id),
            )

    # --- trials ----------------------------------------------------------------------
    def add_trials(
        self, campaign_id: str, round_index: int, trials: Sequence[tuple[str, dict[str, Any]]]
    ) -> int:
        with self._writing() as db:
            return sqlite_trials.add_trials(db, campaign_id, round_index, trials)

    def trials(
        self, campaign_id: str, states: Collection[TrialState] | None = None
    ) -> list[TrialRow]:
        query = f"SELECT {TRIAL_COLUMNS} FROM trials WHERE campaign_id = ?"
        args: list[Any] = [campaign_id]
        if states is not None:
            wanted = [TrialState(s).value for s in states]
            query += f" AND state IN ({placeholders(len(wanted))})"
            args += wanted
        with self._reading() as db:
            rows = db.execute(query + " ORDER BY idx", args).fetchall()
        return [trial_row(r) for r in rows]

    def trial(self, campaign_id: str, key: str) -> TrialRow | None:
        with self._reading() as db:
            row = db.execute(
                f"SELECT {TRIAL_COLUMNS} FROM trials WHERE campaign_id = ? AND key = ?",
                (campaign_id, key),
            ).fetchone()
        return None if row is None else trial_row(row)

    def done_keys(self, campaign_id: str) -> set[str]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT key FROM trials WHERE campaign_id = ? AND state = ?",
                (campaign_id, TrialState.DONE.value),
            ).fetchall()
        return {r["key"] for r in rows}

    def mark_running(self, campaign_id: str, keys: Sequence[str]) -> None:
        with self._writing() as db:
            sqlite_trials.mark_running(db, campaign_id, keys)

    def mark_failed(self, campaign_id: str, keys: Sequence[str], error: str) -> None:
        with self._writing() as db:
            sqlite_trials.mark_failed(db, campaign_id, keys, error)

    def reset_running(self, campaign_id: str) -> int:
        with self._writing() as db:
            cur = db.execute(
                "UPDATE trials SET state = ? WHERE campaign_id = ? AND state = ?",
                (TrialState.PENDING.value, campaign_id, TrialState.RUNNING.value),
            )
        return cur.rowcount

    # --- results ---------------------------------------------------------------------
    def lookup_results(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        with self._reading() as db:
            for start in range(0, len(unique), _LOOKUP_CHUNK):
                chunk = unique[start : start + _LOOKUP_CHUNK]
                rows = db.execute(
                    "SELECT key, result_json FROM results "
                    f"WHERE key IN ({placeholders(len(chunk))})",
                    chunk,
                ).fetchall()
                found.update((r["key"], json.loads(r["result_json"])) for r in rows)
        return found

    def record_results(self, campaign_id: str, items: Sequence[ResultItem]) -> int:
        with self._writing() as db:
            return sqlite_trials.record_results(db, campaign_id, items)

    def campaign_results(
        self, campaign_id: str, offset: int = 0, limit: int | None = None
    ) -> list[tuple[TrialRow, dict[str, Any]]]:
        with self._reading() as db:
            return sqlite_trials.campaign_results(db, campaign_id, offset, limit)

    def result_texts(
        self, campaign_id: str, start_index: int = 0, limit: int = 500
    ) -> list[ResultText]:
        with self._reading() as db:
            return sqlite_trials.result_texts(db, campaign_id, start_index, limit)

    # --- events ----------------------------------------------------------------------
    def append_event(self, campaign_id: str, event: CampaignEvent) -> str:
        with self._writing() as db:
            seq = append_event(db, campaign_id, time.time(), event)
        return str(seq)

    def read_events(
        self, campaign_id: str, after: str = "", limit: int = 500, timeout: float = 0.0
    ) -> list[StoredEvent]:
        if after and not after.isdigit():
            raise ArgumentError("cursor", f"{after!r} is not an event cursor of this store")
        after_seq = int(after or 0)
        deadline = time.monotonic() + timeout
        while True:
            with self._reading() as db:
                rows = db.execute(
                    "SELECT seq, time, data_json FROM events "
                    "WHERE campaign_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (campaign_id, after_seq, max(limit, 1)),
                ).fetchall()
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return [stored_event(r) for r in rows]
            with self._committed:
                self._committed.wait(min(remaining, _POLL_INTERVAL_S))

    # --- artifacts -------------------------------------------------------------------
    def put_artifact(
        self, owner: str, digest: str, chunks: Iterable[bytes], *, declared_size: int,
        max_bytes: int, quota_bytes: int, name: str = "",
    ) -> ArtifactInfo:
        return self._artifacts.put(owner, digest, chunks, declared_size=declared_size,
                                   max_bytes=max_bytes, quota_bytes=quota_bytes, name=name)

    def stat_artifact(self, owner: str, digest: str) -> ArtifactInfo | None:
        return self._artifacts.stat(owner, digest)

    def read_artifact(self, owner: str, digest: str) -> bytes:
        return self._artifacts.read(owner, digest)

    # --- coordinator lease -----------------------------------------------------------
    def acquire_lease(self, holder: str, ttl: float, *, steal: bool = False) -> int:
        with self._writing(fenced=False) as db:
            token = sqlite_lease.acquire(db, holder, ttl, steal, time.time())
        if token:
            self.fence_token = token
        return token

    def renew_lease(self, holder: str, token: int, ttl: float) -> bool:
        with self._writing(fenced=False) as db:
            return sqlite_lease.renew(db, holder, token, ttl, time.time())

    def lease(self) -> Lease | None:
        with self._reading() as db:
            return sqlite_lease.current(db, time.time())

    def release_lease(self, token: int) -> None:
        with self._writing(fenced=False) as db:
            sqlite_lease.release(db, token)

    # --- lifecycle -------------------------------------------------------------------
    def ping(self) -> None:
        with self._reading() as db:
            db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()
