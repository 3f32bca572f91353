"""One coordinator per store (prefix): the lease a coordinator holds while it runs.

A starting coordinator takes the store's lease (:meth:`Store.acquire_lease`) before it
recovers anything. While another coordinator's lease is live it waits up to
``CoordinatorConfig.lease_wait_s`` for it to lapse, then refuses to start
(:class:`~faultlab.errors.FailedPreconditionError` naming the holder) — there is no hot
standby. A holder on this host whose process is gone (``kill -9``) is taken over at once.
The holder renews every third of ``lease_ttl_s``; a store outage longer than the TTL keeps the
lease as long as nobody else took it (the token still matches). Every write of the store is
fenced by the token, so a coordinator that lost its lease writes nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable

from faultlab.errors import FailedPreconditionError, UnavailableError
from faultlab.server.store import Store

log = logging.getLogger("faultlab.coordinator")


def holder_name() -> str:
    """``host:pid:nonce``: unique per coordinator process, and tells whether it is alive."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process of this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class CoordinatorLease:
    """Takes, renews and releases the lease of one coordinator on its store."""

    def __init__(self, store: Store, ttl: float, on_lost: Callable[[], None]) -> None:
        self.store = store
        self.ttl = ttl
        self.holder = holder_name()
        self.token = 0
        self.lost = False
        self._on_lost = on_lost
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self, wait_s: float) -> int:
        """Takes the lease, waiting up to ``wait_s`` for a live one to lapse; refuses then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            self.token = await asyncio.to_thread(self.store.acquire_lease, self.holder, self.ttl)
            if self.token:
                break
            current = await asyncio.to_thread(self.store.lease)
            if current is not None and holder_is_dead(current.holder):
                log.warning("taking over the store lease of dead coordinator %s", current.holder)
                self.token = await asyncio.to_thread(
                    self.store.acquire_lease, self.holder, self.ttl, steal=True
                )
                break
            if loop.time() >= deadline:
                holder = current.holder if current is not None else "another coordinator"
                raise FailedPreconditionError(
                    f"the store is owned by coordinator {holder}; one coordinator per store "
                    "(prefix) at a time: stop it, or wait for its lease to lapse"
                )
            await asyncio.sleep(min(self.ttl / 4, 0.5))
        self._renewer = loop.create_task(self._renew(), name="store-lease")
        return self.token

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                renewed = await asyncio.to_thread(
                    self.store.renew_lease, self.holder, self.token, self.ttl
                )
            except UnavailableError:
                continue  # the store is down: the token still fences; retry next period
            if not renewed:
                log.error("the store lease was taken by another coordinator; stopping runs")
                self.lost = True
                self._on_lost()
                return

    async def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        if self.token and not self.lost:
            try:
                try:
                    await asyncio.to_thread(self.store.release_lease, self.token)
                except RuntimeError:
                    # At interpreter exit (an atexit stop) the default executor takes no new
                    # work; the release is one small write, done on this thread instead.
                    self.store.release_lease(self.token)
            except UnavailableError:
                log.warning("could not release the store lease (it lapses after its TTL)")
