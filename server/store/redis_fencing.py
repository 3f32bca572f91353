"""Redis store: the coordinator lease, fenced script calls and the event streams.

* ``P:lease`` — string ``"<token> <holder>"`` with a TTL (``PX``): the live lease.
* ``P:lease_token`` — the fencing-token counter, incremented each time the lease changes
  hands and never reset; every write script of a store holding a lease first checks that
  this counter still equals its token (:func:`faultlab.server.store.redis_scripts.fenced`).
* Blocking ``XREAD`` waits run on their own connection pool, so a waiting event reader never
  holds a connection that writes need.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from faultlab.errors import ArgumentError, UnavailableError
from faultlab.events import CampaignEvent, StoredEvent, decode_event, encode_event
from faultlab.server.store import redis_scripts as lua
from faultlab.server.store.base import Lease, LeaseLostError

# A blocking XREAD must end before the socket timeout; longer waits loop.
_MAX_BLOCK_S = 5.0
_CURSOR = re.compile(r"\d+(-\d+)?")
_StreamReply = list[tuple[str, list[tuple[str, dict[str, str]]]]]


BUSY_REPLIES = ("BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
"""Replies of a Redis that is up but cannot serve now (a long script runs, it loads its data,
a replica lost its primary): retryable, like an unreachable one."""


@contextlib.contextmanager
def unavailable_when_down(url: str) -> Iterator[None]:
    """Redis unreachable, timing out or busy → :class:`~faultlab.errors.UnavailableError`
    (callers retry with backoff; clients see UNAVAILABLE, never INTERNAL)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise UnavailableError(f"Redis store at {url} is unreachable: {exc}") from exc
    except redis.exceptions.ResponseError as exc:
        if str(exc).startswith(BUSY_REPLIES):
            raise UnavailableError(f"Redis store at {url} is busy: {exc}") from exc
        raise


class RedisFencing:
    """Lease, fenced scripts and events of :class:`~faultlab.server.store.redis.RedisStore`."""

    prefix: str
    url: str
    fence_token: int
    _redis: redis.Redis

    def _open_fencing(self, client_url: str, connect_timeout: float, timeout: float) -> None:
        self._blocking = redis.Redis.from_url(
            client_url, decode_responses=True, socket_connect_timeout=connect_timeout,
            socket_timeout=timeout, retry=Retry(NoBackoff(), 0),
        )
        self._append = self._redis.register_script(lua.fenced(lua.APPEND_EVENT))
        self._acquire = self._redis.register_script(lua.ACQUIRE_LEASE)
        self._renew = self._redis.register_script(lua.RENEW_LEASE)
        self._release = self._redis.register_script(lua.RELEASE_LEASE)

    def _close_fencing(self) -> None:
        self._blocking.close()

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        with unavailable_when_down(self.url):
            yield

    def _lease_keys(self) -> list[str]:
        return [f"{self.prefix}:lease", f"{self.prefix}:lease_token"]

    def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Runs a :func:`~faultlab.server.store.redis_scripts.fenced` script with this
        store's token; LeaseLostError when another coordinator holds the lease now."""
        with self._reachable():
            try:
                return script(
                    keys=[f"{self.prefix}:lease_token", *keys],
                    args=[str(self.fence_token), *args],
                )
            except redis.exceptions.ResponseError as exc:
                if str(exc).startswith("FENCED"):
                    raise LeaseLostError(
                        "this coordinator's lease on the store was taken by another "
                        f"coordinator ({exc}); it writes nothing more"
                    ) from exc
                raise

    # --- coordinator lease -----------------------------------------------------------
    def acquire_lease(self, holder: str, ttl: float, *, steal: bool = False) -> int:
        with self._reachable():
            token = int(
                self._acquire(
                    keys=self._lease_keys(),
                    args=[holder, int(ttl * 1000), "1" if steal else "0"],
                )
            )
        if token:
            self.fence_token = token
        return token

    def renew_lease(self, holder: str, token: int, ttl: float) -> bool:
        with self._reachable():
            renewed = self._renew(keys=self._lease_keys(), args=[holder, token, int(ttl * 1000)])
        return bool(renewed)

    def lease(self) -> Lease | None:
        with self._reachable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(f"{self.prefix}:lease")
            pipe.pttl(f"{self.prefix}:lease")
            value, ttl_ms = pipe.execute()
        if value is None:
            return None
        token, _, holder = str(value).partition(" ")
        return Lease(holder, int(token), time.time() + max(int(ttl_ms), 0) / 1000)

    def release_lease(self, token: int) -> None:
        with self._reachable():
            self._release(keys=self._lease_keys(), args=[token])

    # --- events ----------------------------------------------------------------------
    def append_event(self, campaign_id: str, event: CampaignEvent) -> str:
        stream = f"{self.prefix}:campaign:{campaign_id}:events"
        return str(self._run(self._append, [stream], [repr(time.time()), encode_event(event)]))

    def read_events(
        self, campaign_id: str, after: str = "", limit: int = 500, timeout: float = 0.0
    ) -> list[StoredEvent]:
        if after and not _CURSOR.fullmatch(after):
            raise ArgumentError("cursor", f"{after!r} is not an event cursor of this store")
        stream = f"{self.prefix}:campaign:{campaign_id}:events"
        deadline = time.monotonic() + timeout
        with self._reachable():
            while True:
                block_ms = int(min(deadline - time.monotonic(), _MAX_BLOCK_S) * 1000)
                # BLOCK 0 would wait forever: a wait that has run out reads without blocking.
                client = self._blocking if block_ms > 0 else self._redis
                reply = cast(
                    _StreamReply,
                    client.xread(
                        {stream: after or "0-0"},
                        count=max(limit, 1),
                        block=block_ms if block_ms > 0 else None,
                    ),
                )
                if reply or block_ms <= 0:
                    break
        entries = reply[0][1] if reply else []
        return [
            StoredEvent(entry_id, float(fields["time"]), decode_event(fields["data"]))
            for entry_id, fields in entries
        ]
