"""SQLite store: uploaded artifacts (see :class:`~faultlab.server.store.base.Store`).

Two tables: ``artifacts`` — one row per ``(owner, digest)`` with its size, name and the id of
its chunks; ``artifact_chunks`` — ``(blob_id, seq) → data`` pieces of at most
:data:`~faultlab.server.store.base.ARTIFACT_CHUNK` bytes, so no row is huge.

An upload writes its chunks under a fresh ``blob_id`` in short transactions (other requests
are served in between), then one transaction re-checks the quota and inserts the
``artifacts`` row: the artifact becomes visible whole or not at all. Chunks of an upload that
failed are deleted; those of one killed mid-way (no ``artifacts`` row points at them) are
deleted when the store is next opened.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable

from faultlab.errors import NotFoundError
from faultlab.server.store.base import ArtifactInfo, check_artifact_limits, verified_chunks

ARTIFACT_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
    owner   TEXT NOT NULL,
    digest  TEXT NOT NULL,
    size    INTEGER NOT NULL,
    name    TEXT NOT NULL,
    created REAL NOT NULL,
    blob_id TEXT NOT NULL,
    PRIMARY KEY (owner, digest)
);
CREATE TABLE IF NOT EXISTS artifact_chunks (
    blob_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (blob_id, seq)
);
"""

Transaction = Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]


def _info(row: sqlite3.Row) -> ArtifactInfo:
    return ArtifactInfo(row["digest"], row["size"], row["owner"], row["created"], row["name"])


class SqliteArtifacts:
    """The artifact half of :class:`~faultlab.server.store.sqlite.SqliteStore`, on its
    connection, lock and transactions (``reading`` / ``writing``)."""

    def __init__(self, reading: Transaction, writing: Transaction) -> None:
        self._reading = reading
        self._writing = writing
        with self._writing() as db:
            db.execute(
                "DELETE FROM artifact_chunks WHERE blob_id NOT IN (SELECT blob_id FROM artifacts)"
            )

    def stat(self, owner: str, digest: str) -> ArtifactInfo | None:
        with self._reading() as db:
            row = db.execute(
                "SELECT owner, digest, size, name, created FROM artifacts "
                "WHERE owner = ? AND digest = ?",
                (owner, digest),
            ).fetchone()
        return None if row is None else _info(row)

    def read(self, owner: str, digest: str) -> bytes:
        with self._reading() as db:
            row = db.execute(
                "SELECT blob_id FROM artifacts WHERE owner = ? AND digest = ?", (owner, digest)
            ).fetchone()
            if row is None:
                raise NotFoundError("artifact", digest)
            chunks = db.execute(
                "SELECT data FROM artifact_chunks WHERE blob_id = ? ORDER BY seq",
                (row["blob_id"],),
            )
            return b"".join(bytes(r["data"]) for r in chunks)

    def put(
        self,
        owner: str,
        digest: str,
        chunks: Iterable[bytes],
        *,
        declared_size: int,
        max_bytes: int,
        quota_bytes: int,
        name: str,
    ) -> ArtifactInfo:
        existing = self.stat(owner, digest)
        if existing is not None:
            return existing
        check_artifact_limits(digest, declared_size, max_bytes=max_bytes,
                              used_bytes=self._used(owner), quota_bytes=quota_bytes)
        blob_id = uuid.uuid4().hex
        try:
            for seq, piece in enumerate(verified_chunks(digest, chunks, declared_size)):
                with self._writing() as db:
                    db.execute("INSERT INTO artifact_chunks (blob_id, seq, data) VALUES (?, ?, ?)",
                               (blob_id, seq, piece))
            return self._finish(owner, digest, declared_size, name, blob_id,
                                max_bytes=max_bytes, quota_bytes=quota_bytes)
        except BaseException:
            with self._writing() as db:
                db.execute("DELETE FROM artifact_chunks WHERE blob_id = ?", (blob_id,))
            raise

    def _finish(
        self, owner: str, digest: str, size: int, name: str, blob_id: str, *,
        max_bytes: int, quota_bytes: int,
    ) -> ArtifactInfo:
        """Makes the uploaded chunks an artifact, atomically (a concurrent upload of the same
        artifact may have finished first: its record wins, these chunks go)."""
        with self._writing() as db:
            row = db.execute(
                "SELECT owner, digest, size, name, created FROM artifacts "
                "WHERE owner = ? AND digest = ?",
                (owner, digest),
            ).fetchone()
            if row is not None:
                db.execute("DELETE FROM artifact_chunks WHERE blob_id = ?", (blob_id,))
                return _info(row)
            (used,) = db.execute(
                "SELECT COALESCE(SUM(size), 0) FROM artifacts WHERE owner = ?", (owner,)
            ).fetchone()
            check_artifact_limits(digest, size, max_bytes=max_bytes, used_bytes=used,
                                  quota_bytes=quota_bytes)
            info = ArtifactInfo(digest, size, owner, time.time(), name)
            db.execute(
                "INSERT INTO artifacts (owner, digest, size, name, created, blob_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (owner, digest, size, name, info.created, blob_id),
            )
        return info

    def _used(self, owner: str) -> int:
        with self._reading() as db:
            (used,) = db.execute(
                "SELECT COALESCE(SUM(size), 0) FROM artifacts WHERE owner = ?", (owner,)
            ).fetchone()
        return int(used)
