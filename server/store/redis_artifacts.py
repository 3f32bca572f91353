"""Redis store: uploaded artifacts (see :class:`~faultlab.server.store.base.Store`).

Keys (``P`` = the store's prefix):

* ``P:artifacts:OWNER`` — hash ``digest → {"size","name","created","blob"}`` (JSON): one
  tenant's artifacts. One hash per owner, so no owner or digest can alias another's.
* ``P:artifact_usage`` — hash ``owner → bytes stored`` (the quota counter).
* ``P:blob:BLOB`` — list of the content's chunks of at most
  :data:`~faultlab.server.store.base.ARTIFACT_CHUNK` bytes, so no value is huge.

An upload appends its chunks to a fresh ``P:blob:BLOB`` that expires unless finished (so an
upload killed mid-way leaves nothing behind), then one Lua script re-checks the quota, writes
the record, counts the bytes and removes the expiry: the artifact becomes visible whole or not
at all. That script is fenced like every other write (:mod:`redis_scripts`): a coordinator
that lost its lease never makes an artifact visible or counts its bytes (its chunks expire).
Chunks travel on a second connection pool without response decoding (they are bytes).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from faultlab.errors import NotFoundError
from faultlab.server.store.base import (
    ArtifactInfo,
    check_artifact_limits,
    quota_exceeded,
    verified_chunks,
)
from faultlab.server.store.redis_fencing import unavailable_when_down
from faultlab.server.store.redis_scripts import fenced

UPLOAD_TTL_S = 3600
"""How long the chunks of an unfinished upload live."""
_READ_BATCH = 16

FINISH_ARTIFACT = """
-- KEYS: artifacts hash of the owner, usage hash, blob list
-- ARGV: owner, digest, record JSON, size, quota
local existing = redis.call('HGET', KEYS[1], ARGV[2])
if existing then
  redis.call('DEL', KEYS[3])
  return {0, existing}
end
local used = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if used + tonumber(ARGV[4]) > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[3])
  return {-1, tostring(used)}
end
redis.call('PERSIST', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[2], ARGV[1], ARGV[4])
return {1, ARGV[3]}
"""


def _info(owner: str, digest: str, data: dict[str, Any]) -> ArtifactInfo:
    return ArtifactInfo(digest, int(data["size"]), owner, float(data["created"]),
                        str(data.get("name", "")))


class RedisArtifacts:
    """The artifact methods of :class:`~faultlab.server.store.redis.RedisStore` (a base
    class of it): they use the store's ``prefix`` and a connection pool of their own."""

    prefix: str
    url: str
    _run: Callable[[Script, Sequence[str], Sequence[Any]], Any]
    """The store's fenced script call (:meth:`RedisFencing._run`)."""

    def _open_artifacts(self, client_url: str, connect_timeout: float,
                        socket_timeout: float) -> None:
        self._blobs = redis.Redis.from_url(
            client_url, socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0),
        )
        self._finish_artifact = self._blobs.register_script(fenced(FINISH_ARTIFACT))

    def _close_artifacts(self) -> None:
        self._blobs.close()

    def _owner_key(self, owner: str) -> str:
        return f"{self.prefix}:artifacts:{owner}"

    @contextlib.contextmanager
    def _blobs_reachable(self) -> Iterator[None]:
        with unavailable_when_down(self.url):
            yield

    def _record(self, owner: str, digest: str) -> dict[str, Any] | None:
        with self._blobs_reachable():
            raw = self._blobs.hget(self._owner_key(owner), digest)
        return None if raw is None else dict(json.loads(raw))

    def stat_artifact(self, owner: str, digest: str) -> ArtifactInfo | None:
        record = self._record(owner, digest)
        return None if record is None else _info(owner, digest, record)

    def read_artifact(self, owner: str, digest: str) -> bytes:
        record = self._record(owner, digest)
        if record is None:
            raise NotFoundError("artifact", digest)
        key = f"{self.prefix}:blob:{record['blob']}"
        parts: list[bytes] = []
        with self._blobs_reachable():
            while True:
                batch = cast(list[bytes], self._blobs.lrange(
                    key, len(parts), len(parts) + _READ_BATCH - 1))
                parts.extend(batch)
                if len(batch) < _READ_BATCH:
                    return b"".join(parts)

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
        existing = self.stat_artifact(owner, digest)
        if existing is not None:
            return existing
        usage_key = f"{self.prefix}:artifact_usage"
        with self._blobs_reachable():
            used = int(self._blobs.hget(usage_key, owner) or 0)
        check_artifact_limits(digest, declared_size, max_bytes=max_bytes, used_bytes=used,
                              quota_bytes=quota_bytes)
        blob = uuid.uuid4().hex
        blob_key = f"{self.prefix}:blob:{blob}"
        try:
            with self._blobs_reachable():
                for piece in verified_chunks(digest, chunks, declared_size):
                    pipe = self._blobs.pipeline()
                    pipe.rpush(blob_key, piece)
                    pipe.expire(blob_key, UPLOAD_TTL_S)
                    pipe.execute()
                record = json.dumps({"size": declared_size, "name": name,
                                     "created": time.time(), "blob": blob})
                status, value = self._run(  # fenced: a coordinator that lost its lease
                    self._finish_artifact,  # never makes an artifact visible
                    [self._owner_key(owner), usage_key, blob_key],
                    [owner, digest, record, declared_size, quota_bytes],
                )
        except BaseException:
            with contextlib.suppress(redis.exceptions.RedisError):
                self._blobs.delete(blob_key)
            raise
        if int(status) < 0:  # another upload of this tenant finished first and used the room
            raise quota_exceeded(declared_size, int(value), quota_bytes)
        return _info(owner, digest, json.loads(value))
