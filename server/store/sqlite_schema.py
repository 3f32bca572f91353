"""SQLite store: the schema and the mapping between rows and records (see ``sqlite.py``)."""

from __future__ import annotations

import json
import sqlite3

from faultlab.events import CampaignEvent, StoredEvent, decode_event, encode_event
from faultlab.server.store.base import CampaignRecord, TrialRow
from faultlab.states import CampaignState, TrialState

SCHEMA = """
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

CAMPAIGN_COLUMNS = (
    "id, owner, kind, name, spec_json, spec_hash, seed, code_version, state, request_id, "
    "created_at, updated_at, error, trials_total, trials_done, trials_cached, trials_failed, "
    "meta_json"
)
TRIAL_COLUMNS = "key, idx, round, state, attempts, trial_json, error"

# Error names (Python >= 3.11 exposes them) that mean "the file cannot be used right now",
# as opposed to a bug in a statement.
UNAVAILABLE_ERRORS = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
)


def campaign_record(row: sqlite3.Row) -> CampaignRecord:
    values = dict(row)
    values["state"] = CampaignState(values["state"])
    return CampaignRecord(**values)


def trial_row(row: sqlite3.Row) -> TrialRow:
    return TrialRow(
        key=row["key"],
        index=row["idx"],
        round=row["round"],
        state=TrialState(row["state"]),
        attempts=row["attempts"],
        trial=json.loads(row["trial_json"]),
        error=row["error"],
    )


def placeholders(n: int) -> str:
    return ",".join("?" * n)


def stored_event(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(str(row["seq"]), row["time"], decode_event(row["data_json"]))


def append_event(
    db: sqlite3.Connection, campaign_id: str, now: float, event: CampaignEvent
) -> int:
    """Appends ``event`` inside the caller's transaction; returns its sequence number."""
    cur = db.execute(
        "INSERT INTO events (campaign_id, time, data_json) VALUES (?, ?, ?)",
        (campaign_id, now, encode_event(event)),
    )
    assert cur.lastrowid is not None  # always set after an INSERT into a rowid table
    return cur.lastrowid
