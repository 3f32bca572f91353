"""SQLite store: the trial-state writes, each run inside the caller's ``BEGIN IMMEDIATE``.

:class:`~faultlab.server.store.sqlite.SqliteStore` owns the connection, the lock and the
transaction; these functions hold the statements, so one write is one transaction. Each
writes nothing once the campaign is terminal (checked in the same transaction).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from faultlab.events import ProgressEvent, TrialEvent
from faultlab.server.store.base import ResultItem, ResultText, TrialRow
from faultlab.server.store.sqlite_schema import append_event, trial_row
from faultlab.states import ACTIVE_STATES, TrialState

_ACTIVE = tuple(s.value for s in ACTIVE_STATES)


def _active(db: sqlite3.Connection, campaign_id: str) -> bool:
    """Whether the campaign exists and is not terminal (trial writes are fenced on it)."""
    row = db.execute("SELECT state FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    return row is not None and row["state"] in _ACTIVE


def add_trials(
    db: sqlite3.Connection,
    campaign_id: str,
    round_index: int,
    trials: Sequence[tuple[str, dict[str, Any]]],
) -> int:
    if not _active(db, campaign_id):
        return 0
    (next_index,) = db.execute(
        "SELECT COALESCE(MAX(idx) + 1, 0) FROM trials WHERE campaign_id = ?", (campaign_id,)
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
            "UPDATE campaigns SET trials_total = trials_total + ?, updated_at = ? WHERE id = ?",
            (added, time.time(), campaign_id),
        )
    return added


def _state(db: sqlite3.Connection, campaign_id: str, key: str) -> str | None:
    row = db.execute(
        "SELECT state FROM trials WHERE campaign_id = ? AND key = ?", (campaign_id, key)
    ).fetchone()
    return None if row is None else str(row["state"])


def mark_running(db: sqlite3.Connection, campaign_id: str, keys: Sequence[str]) -> None:
    if not _active(db, campaign_id):
        return
    retried = 0
    for key in keys:
        state = _state(db, campaign_id, key)
        if state is None or state == TrialState.DONE.value:
            continue
        retried += state == TrialState.FAILED.value
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


def mark_failed(
    db: sqlite3.Connection, campaign_id: str, keys: Sequence[str], error: str
) -> None:
    if not _active(db, campaign_id):
        return
    newly_failed = 0
    for key in keys:
        state = _state(db, campaign_id, key)
        if state is None or state == TrialState.DONE.value:
            continue
        newly_failed += state != TrialState.FAILED.value
        db.execute(
            "UPDATE trials SET state = ?, error = ? WHERE campaign_id = ? AND key = ?",
            (TrialState.FAILED.value, error, campaign_id, key),
        )
    if newly_failed:
        db.execute(
            "UPDATE campaigns SET trials_failed = trials_failed + ?, updated_at = ? WHERE id = ?",
            (newly_failed, time.time(), campaign_id),
        )


def _record_one(
    db: sqlite3.Connection, campaign_id: str, item: ResultItem, now: float
) -> str | None:
    """Records one result; returns the trial's previous state, or None when skipped."""
    row = db.execute(
        "SELECT state, trial_json FROM trials WHERE campaign_id = ? AND key = ?",
        (campaign_id, item.key),
    ).fetchone()
    if row is None or row["state"] == TrialState.DONE.value:
        return None
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
    event = TrialEvent(item.key, json.loads(row["trial_json"]), json.loads(stored), item.cached)
    append_event(db, campaign_id, now, event)
    return str(row["state"])


def record_results(db: sqlite3.Connection, campaign_id: str, items: Sequence[ResultItem]) -> int:
    if not _active(db, campaign_id):
        return 0
    now = time.time()
    new = cached = retried = 0
    for item in items:
        previous = _record_one(db, campaign_id, item, now)
        if previous is None:
            continue
        new += 1
        cached += item.cached
        retried += previous == TrialState.FAILED.value
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
    progress = ProgressEvent(counters["trials_done"], counters["trials_total"],
                             counters["trials_cached"], counters["trials_failed"])
    append_event(db, campaign_id, now, progress)
    return new


def campaign_results(
    db: sqlite3.Connection, campaign_id: str, offset: int, limit: int | None
) -> list[tuple[TrialRow, dict[str, Any]]]:
    rows = db.execute(
        "SELECT t.key, t.idx, t.round, t.state, t.attempts, t.trial_json, t.error, "
        "r.result_json FROM trials t JOIN results r ON r.key = t.key "
        "WHERE t.campaign_id = ? AND t.state = ? ORDER BY t.idx LIMIT ? OFFSET ?",
        (campaign_id, TrialState.DONE.value, -1 if limit is None else max(limit, 0),
         max(offset, 0)),
    ).fetchall()
    return [(trial_row(r), json.loads(r["result_json"])) for r in rows]


def result_texts(
    db: sqlite3.Connection, campaign_id: str, start_index: int, limit: int
) -> list[ResultText]:
    if limit <= 0:
        return []
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples: a page builds no Row objects
    rows = cursor.execute(  # a range of the (campaign_id, idx) index: O(page) at any depth
        "SELECT t.key, t.idx, t.attempts, t.trial_json, r.result_json FROM trials t "
        "JOIN results r ON r.key = t.key WHERE t.campaign_id = ? AND t.idx >= ? "
        "AND t.state = ? ORDER BY t.idx LIMIT ?",
        (campaign_id, max(start_index, 0), TrialState.DONE.value, limit),
    )
    return [ResultText(*row) for row in rows]
