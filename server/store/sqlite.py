"""SQLite store: the embedded default, one file on one machine.

Layout (one database file, WAL journal):

* ``campaigns`` — one row per :class:`CampaignRecord` (counters included); a partial unique
  index on ``(owner, request_id)`` makes submission idempotent per tenant.
* ``trials`` — ``(campaign_id, key)`` primary key; ``idx`` is the plan-order position,
  ``trial_json`` the replayable trial, ``state`` / ``attempts`` / ``error`` its progress.
* ``results`` — ``key`` primary key → ``result_json``: the content-addressed cache, shared
  by every campaign.
* ``events`` — ``seq INTEGER PRIMARY KEY AUTOINCREMENT``; the cursor is ``str(seq)``.
  AUTOINCREMENT guarantees a sequence number is never reused, so cursors stay valid.

Atomicity: one connection guarded by a lock; every write runs inside ``BEGIN IMMEDIATE``
… ``COMMIT``, so a result, its trial's DONE state, the counters and the events land together
or not at all — also when the process is killed with ``kill -9`` mid-write (the WAL rolls
the torn transaction back on the next open, by this or another process). ``synchronous =
NORMAL`` keeps every committed transaction across a process crash; only a power loss can
drop the last few, never corrupt the file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from faultlab.errors import SpecError, UnavailableError
from faultlab.server.store.base import (
    CampaignRecord,
    ResultItem,
    Store,
    StoredEvent,
    TrialRow,
    leavable_states,
)
from faultlab.states import ACTIVE_STATES, CampaignState, TrialState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    spec_json     TEXT NOT NULL,
    spec_hash     TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    code_version  TEXT NOT NULL,
    state         TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    error         TEXT NOT NULL,
    trials_total  INTEGER NOT NULL,
    trials_done   INTEGER NOT NULL,
    trials_cached INTEGER NOT NULL,
    trials_failed INTEGER NOT NULL,
    meta_json     TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS campaigns_by_request
    ON campaigns (owner, request_id) WHERE request_id != '';
CREATE INDEX IF NOT EXISTS campaigns_by_created ON campaigns (created_at, id);
CREATE INDEX IF NOT EXISTS campaigns_by_owner ON campaigns (owner, created_at, id);
CREATE INDEX IF NOT EXISTS campaigns_by_state ON campaigns (state, created_at);

CREATE TABLE IF NOT EXISTS trials (
    campaign_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    round       INTEGER NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    trial_json  TEXT NOT NULL,
    error       TEXT NOT NULL,
    PRIMARY KEY (campaign_id, key)
);
CREATE UNIQUE INDEX IF NOT EXISTS trials_in_order ON trials (campaign_id, idx);

CREATE TABLE IF NOT EXISTS results (
    key         TEXT PRIMARY KEY,
    result_json TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id TEXT NOT NULL,
    time        REAL NOT NULL,
    data_json   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_campaign ON events (campaign_id, seq);
"""

_CAMPAIGN_COLUMNS = (
    "id, owner, kind, name, spec_json, spec_hash, seed, code_version, state, request_id, "
    "created_at, updated_at, error, trials_total, trials_done, trials_cached, trials_failed, "
    "meta_json"
)
_TRIAL_COLUMNS = "key, idx, round, state, attempts, trial_json, error"

# Error names (Python >= 3.11 exposes them) that mean "the file cannot be used right now",
# as opposed to a bug in a statement.
_UNAVAILABLE_ERRORS = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)
_POLL_INTERVAL_S = 0.05
_LOOKUP_CHUNK = 500  # stays far below SQLite's bound on host parameters per statement


def _campaign(row: sqlite3.Row) -> CampaignRecord:
    values = dict(row)
    values["state"] = CampaignState(values["state"])
    return CampaignRecord(**values)


def _trial(row: sqlite3.Row) -> TrialRow:
    return TrialRow(
        key=row["key"],
        index=row["idx"],
        round=row["round"],
        state=TrialState(row["state"]),
        attempts=row["attempts"],
        trial=json.loads(row["trial_json"]),
        error=row["error"],
    )


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class SqliteStore(Store):
    """The store in one SQLite file (``":memory:"`` for a throw-away store)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
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
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UnavailableError(f"cannot open SQLite store {path!r}: {exc}") from exc

    # --- connection helpers ----------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._mapped_errors():
            yield self._db

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back on any error."""
        with self._lock, self._mapped_errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                # Some errors (SQLITE_FULL, SQLITE_IOERR) already rolled the transaction back.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "")
            if name.startswith(_UNAVAILABLE_ERRORS):
                raise UnavailableError(f"SQLite store {self.path!r} unavailable: {exc}") from exc
            raise

    @staticmethod
    def _append(db: sqlite3.Connection, campaign_id: str, now: float, data: dict[str, Any]) -> int:
        cur = db.execute(
            "INSERT INTO events (campaign_id, time, data_json) VALUES (?, ?, ?)",
            (campaign_id, now, json.dumps(data)),
        )
        assert cur.lastrowid is not None  # always set after an INSERT into a rowid table
        return cur.lastrowid

    # --- campaigns -------------------------------------------------------------------
    def create_campaign(self, record: CampaignRecord) -> tuple[CampaignRecord, bool]:
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
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ? "
                "OR (request_id != '' AND owner = ? AND request_id = ?)",
                (record.id, record.owner, record.request_id),
            ).fetchone()
            if existing is not None:
                return _campaign(existing), False
            db.execute(
                f"INSERT INTO campaigns ({_CAMPAIGN_COLUMNS}) "
                f"VALUES ({_placeholders(18)})",
                (
                    record.id, record.owner, record.kind, record.name, record.spec_json,
                    record.spec_hash, record.seed, record.code_version, record.state.value,
                    record.request_id, record.created_at, record.updated_at, record.error,
                    record.trials_total, record.trials_done, record.trials_cached,
                    record.trials_failed, record.meta_json,
                ),
            )  # fmt: skip
            self._append(db, record.id, now, {"type": "state", "state": "QUEUED", "message": ""})
        return record, True

    def get_campaign(self, campaign_id: str) -> CampaignRecord | None:
        with self._reading() as db:
            row = db.execute(
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
            ).fetchone()
        return None if row is None else _campaign(row)

    def list_campaigns(
        self, owner: str | None, limit: int, offset: int = 0
    ) -> list[CampaignRecord]:
        where, args = ("WHERE owner = ?", [owner]) if owner is not None else ("", [])
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns {where} "
                "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (*args, max(limit, 0), max(offset, 0)),
            ).fetchall()
        return [_campaign(r) for r in rows]

    def active_campaigns(self) -> list[CampaignRecord]:
        states = [s.value for s in ACTIVE_STATES]
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns "
                f"WHERE state IN ({_placeholders(len(states))}) ORDER BY created_at, id",
                states,
            ).fetchall()
        return [_campaign(r) for r in rows]

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
                f"WHERE id = ? AND state IN ({_placeholders(len(states))})",
                (new.value, now, error, error, campaign_id, *states),
            )
            if cur.rowcount == 0:
                return False
            self._append(
                db, campaign_id, now, {"type": "state", "state": new.value, "message": message}
            )
        return True

    def set_meta(self, campaign_id: str, meta_json: str) -> None:
        with self._writing() as db:
            db.execute(
                "UPDATE campaigns SET meta_json = ?, updated_at = ? WHERE id = ?",
                (meta_json, time.time(), campaign_id),
            )

    # --- trials ----------------------------------------------------------------------
    def add_trials(
        self, campaign_id: str, round_index: int, trials: Sequence[tuple[str, dict[str, Any]]]
    ) -> int:
        with self._writing() as db:
            campaign = db.execute("SELECT 1 FROM campaigns WHERE id = ?", (campaign_id,))
            if campaign.fetchone() is None:
                return 0
            (next_index,) = db.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE campaign_id = ?",
                (campaign_id,),
            ).fetchone()
            added = 0
            for key, trial in trials:
                cur = db.execute(
                    "INSERT OR IGNORE INTO trials "
                    "(campaign_id, key, idx, round, state, attempts, trial_json, error) "
                    "VALUES (?, ?, ?, ?, ?, 0, ?, '')",
                    (
                        campaign_id, key, next_index + added, round_index,
                        TrialState.PENDING.value, json.dumps(trial),
                    ),
                )  # fmt: skip
                added += cur.rowcount
            if added:
                db.execute(
                    "UPDATE campaigns SET trials_total = trials_total + ?, updated_at = ? "
                    "WHERE id = ?",
                    (added, time.time(), campaign_id),
                )
        return added

    def trials(
        self, campaign_id: str, states: Collection[TrialState] | None = None
    ) -> list[TrialRow]:
        query = f"SELECT {_TRIAL_COLUMNS} FROM trials WHERE campaign_id = ?"
        args: list[Any] = [campaign_id]
        if states is not None:
            wanted = [TrialState(s).value for s in states]
            query += f" AND state IN ({_placeholders(len(wanted))})"
            args += wanted
        with self._reading() as db:
            rows = db.execute(query + " ORDER BY idx", args).fetchall()
        return [_trial(r) for r in rows]

    def mark_running(self, campaign_id: str, keys: Sequence[str]) -> None:
        with self._writing() as db:
            retried = 0
            for key in keys:
                row = db.execute(
                    "SELECT state FROM trials WHERE campaign_id = ? AND key = ?",
                    (campaign_id, key),
                ).fetchone()
                if row is None or row["state"] == TrialState.DONE.value:
                    continue
                retried += row["state"] == TrialState.FAILED.value
                db.execute(
                    "UPDATE trials SET state = ?, attempts = attempts + 1 "
                    "WHERE campaign_id = ? AND key = ?",
                    (TrialState.RUNNING.value, campaign_id, key),
                )
            if retried:
                db.execute(
                    "UPDATE campaigns SET trials_failed = trials_failed - ? WHERE id = ?",
                    (retried, campaign_id),
                )

    def mark_failed(self, campaign_id: str, keys: Sequence[str], error: str) -> None:
        with self._writing() as db:
            newly_failed = 0
            for key in keys:
                row = db.execute(
                    "SELECT state FROM trials WHERE campaign_id = ? AND key = ?",
                    (campaign_id, key),
                ).fetchone()
                if row is None or row["state"] == TrialState.DONE.value:
                    continue
                newly_failed += row["state"] != TrialState.FAILED.value
                db.execute(
                    "UPDATE trials SET state = ?, error = ? WHERE campaign_id = ? AND key = ?",
                    (TrialState.FAILED.value, error, campaign_id, key),
                )
            if newly_failed:
                db.execute(
                    "UPDATE campaigns SET trials_failed = trials_failed + ?, updated_at = ? "
                    "WHERE id = ?",
                    (newly_failed, time.time(), campaign_id),
                )

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
                    f"WHERE key IN ({_placeholders(len(chunk))})",
                    chunk,
                ).fetchall()
                found.update((r["key"], json.loads(r["result_json"])) for r in rows)
        return found

    def record_results(self, campaign_id: str, items: Sequence[ResultItem]) -> int:
        now = time.time()
        with self._writing() as db:
            new = cached = retried = 0
            for item in items:
                row = db.execute(
                    "SELECT state, trial_json FROM trials WHERE campaign_id = ? AND key = ?",
                    (campaign_id, item.key),
                ).fetchone()
                if row is None or row["state"] == TrialState.DONE.value:
                    continue
                db.execute(
                    "INSERT OR IGNORE INTO results (key, result_json) VALUES (?, ?)",
                    (item.key, json.dumps(item.result)),
                )
                # First write wins: every campaign reports the one stored result of a key.
                (stored,) = db.execute(
                    "SELECT result_json FROM results WHERE key = ?", (item.key,)
                ).fetchone()
                db.execute(
                    "UPDATE trials SET state = ?, attempts = MAX(attempts, 1) "
                    "WHERE campaign_id = ? AND key = ?",
                    (TrialState.DONE.value, campaign_id, item.key),
                )
                self._append(
                    db,
                    campaign_id,
                    now,
                    {
                        "type": "trial",
                        "key": item.key,
                        "trial": json.loads(row["trial_json"]),
                        "result": json.loads(stored),
                        "cached": item.cached,
                    },
                )
                new += 1
                cached += item.cached
                retried += row["state"] == TrialState.FAILED.value
            if not new:
                return 0
            db.execute(
                "UPDATE campaigns SET trials_done = trials_done + ?, "
                "trials_cached = trials_cached + ?, trials_failed = trials_failed - ?, "
                "updated_at = ? WHERE id = ?",
                (new, cached, retried, now, campaign_id),
            )
            counters = db.execute(
                "SELECT trials_done, trials_total, trials_cached, trials_failed "
                "FROM campaigns WHERE id = ?",
                (campaign_id,),
            ).fetchone()
            self._append(
                db,
                campaign_id,
                now,
                {
                    "type": "progress",
                    "done": counters["trials_done"],
                    "total": counters["trials_total"],
                    "cached": counters["trials_cached"],
                    "failed": counters["trials_failed"],
                },
            )
        return new

    def campaign_results(
        self, campaign_id: str, offset: int = 0, limit: int | None = None
    ) -> list[tuple[TrialRow, dict[str, Any]]]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT t.key, t.idx, t.round, t.state, t.attempts, t.trial_json, t.error, "
                "r.result_json FROM trials t JOIN results r ON r.key = t.key "
                "WHERE t.campaign_id = ? AND t.state = ? ORDER BY t.idx LIMIT ? OFFSET ?",
                (
                    campaign_id,
                    TrialState.DONE.value,
                    -1 if limit is None else max(limit, 0),
                    max(offset, 0),
                ),
            ).fetchall()
        return [(_trial(r), json.loads(r["result_json"])) for r in rows]

    # --- events ----------------------------------------------------------------------
    def append_event(self, campaign_id: str, data: dict[str, Any]) -> str:
        with self._writing() as db:
            seq = self._append(db, campaign_id, time.time(), data)
        return str(seq)

    def read_events(
        self, campaign_id: str, after: str = "", limit: int = 500, timeout: float = 0.0
    ) -> list[StoredEvent]:
        if after and not after.isdigit():
            raise SpecError("after", f"{after!r} is not an event cursor of this store")
        after_seq = int(after or 0)
        deadline = time.monotonic() + timeout
        while True:
            with self._reading() as db:
                rows = db.execute(
                    "SELECT seq, time, data_json FROM events "
                    "WHERE campaign_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (campaign_id, after_seq, max(limit, 1)),
                ).fetchall()
            if rows or time.monotonic() >= deadline:
                return [
                    StoredEvent(str(r["seq"]), r["time"], json.loads(r["data_json"])) for r in rows
                ]
            time.sleep(_POLL_INTERVAL_S)

    # --- lifecycle -------------------------------------------------------------------
    def ping(self) -> None:
        with self._reading() as db:
            db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()
