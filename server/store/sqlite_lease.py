"""SQLite store: the coordinator lease, one row, each function run inside the caller's
``BEGIN IMMEDIATE`` (see ``sqlite.py``).

The ``lease`` row is never deleted: releasing it sets ``expires`` to 0, so the token only
grows and a stale coordinator's token never matches again.
"""

from __future__ import annotations

import sqlite3

from faultlab.server.store.base import Lease, LeaseLostError

LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS lease (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    token   INTEGER NOT NULL,
    expires REAL NOT NULL
);
"""
_NAME = "coordinator"


def _row(db: sqlite3.Connection) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute(
        "SELECT holder, token, expires FROM lease WHERE name = ?", (_NAME,)
    ).fetchone()
    return row


def acquire(db: sqlite3.Connection, holder: str, ttl: float, steal: bool, now: float) -> int:
    row = _row(db)
    if row is not None and row["expires"] > now and row["holder"] != holder and not steal:
        return 0
    token = 1 if row is None else int(row["token"]) + 1
    db.execute(
        "INSERT INTO lease (name, holder, token, expires) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = excluded.token, "
        "expires = excluded.expires",
        (_NAME, holder, token, now + ttl),
    )
    return token


def renew(db: sqlite3.Connection, holder: str, token: int, ttl: float, now: float) -> bool:
    cur = db.execute(
        "UPDATE lease SET expires = ? WHERE name = ? AND token = ? AND holder = ?",
        (now + ttl, _NAME, token, holder),
    )
    return cur.rowcount == 1


def current(db: sqlite3.Connection, now: float) -> Lease | None:
    row = _row(db)
    if row is None or row["expires"] <= now:
        return None
    return Lease(row["holder"], int(row["token"]), float(row["expires"]))


def release(db: sqlite3.Connection, token: int) -> None:
    db.execute("UPDATE lease SET expires = 0 WHERE name = ? AND token = ?", (_NAME, token))


def check_fence(db: sqlite3.Connection, token: int) -> None:
    """Raises LeaseLostError unless ``token`` is still the store's lease token."""
    row = _row(db)
    if row is None or int(row["token"]) != token:
        raise LeaseLostError(
            "this coordinator's lease on the store was taken by another coordinator "
            f"({row['holder'] if row is not None else 'none'}); it writes nothing more"
        )
