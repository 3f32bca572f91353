"""Event streams without a thread per subscriber: one reader per campaign, fanned out.

:class:`EventHub` keeps one :class:`_Feed` per campaign that has live subscribers. A feed is
one asyncio task whose store read waits for news in a worker thread (Redis ``XREAD BLOCK`` on
its own connection pool; SQLite wakes on a commit of this process and polls otherwise), so
500 subscribers of a campaign cost one thread, not 500. Each read appends to a bounded buffer
of the campaign's latest events and wakes every subscriber; a subscriber serves itself from
the buffer when its cursor is inside it and from a non-blocking store read otherwise (a
catch-up from an old cursor), so each one sees every event once, in order. Subscribers per
tenant are bounded (RESOURCE_EXHAUSTED beyond). During a store outage the feed retries with
backoff and waiting subscribers end with UNAVAILABLE (the SDK resumes from its cursor).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from faultlab.errors import FaultlabError, ResourceExhaustedError, UnavailableError
from faultlab.events import StateEvent, StoredEvent
from faultlab.server.store import Store

READ_BATCH = 500
_WAIT_S = 1.0
_MAX_BACKOFF_S = 5.0


def cursor_order(cursor: str) -> tuple[int, ...]:
    """A cursor as a sortable tuple (SQLite ``"17"``, Redis ``"1700000000000-3"``)."""
    return tuple(int(part) for part in cursor.split("-")) if cursor else ()


def is_terminal_event(stored: StoredEvent) -> bool:
    event = stored.event
    return isinstance(event, StateEvent) and event.state.is_terminal()


class _Feed:
    """One campaign's reader task and its buffer of recent events."""

    def __init__(
        self, store: Store, campaign_id: str, start: str, buffer: int, pool: ThreadPoolExecutor
    ) -> None:
        self.store = store
        self.pool = pool
        self.campaign_id = campaign_id
        self.base = start
        """Cursor just before the oldest buffered event: the buffer covers cursors >= it."""
        self.head = start
        self.events: list[StoredEvent] = []
        self.orders: list[tuple[int, ...]] = []
        self.buffer = buffer
        self.subscribers = 0
        self.error: FaultlabError | None = None
        """Why the last read failed: UNAVAILABLE (retried) or, e.g., a bad cursor (final)."""
        self.changed = asyncio.Condition()
        self.task = asyncio.get_running_loop().create_task(
            self._read(), name=f"events-{campaign_id}"
        )

    async def _read(self) -> None:
        backoff = 0.1
        loop = asyncio.get_running_loop()
        while True:
            try:
                batch = await loop.run_in_executor(
                    self.pool, self.store.read_events, self.campaign_id, self.head, READ_BATCH,
                    _WAIT_S,
                )
            except UnavailableError as exc:
                await self._publish([], exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            except FaultlabError as exc:  # e.g. a cursor of the other store's shape
                await self._publish([], exc)
                return
            except Exception as exc:  # the store was closed under it (shutdown): retryable
                await self._publish([], UnavailableError(f"the event reader stopped: {exc}"))
                return
            backoff = 0.1
            if batch:
                await self._publish(batch, None)

    async def _publish(self, batch: list[StoredEvent], error: FaultlabError | None) -> None:
        self.events.extend(batch)
        self.orders.extend(cursor_order(e.cursor) for e in batch)
        if batch:
            self.head = batch[-1].cursor
        if len(self.events) > 2 * self.buffer:  # trimmed in bulk: amortised O(1) per event
            cut = len(self.events) - self.buffer
            self.base = self.events[cut - 1].cursor
            del self.events[:cut], self.orders[:cut]
        self.error = error
        async with self.changed:
            self.changed.notify_all()

    def after(self, cursor: str) -> list[StoredEvent] | None:
        """Buffered events after ``cursor``; None when the buffer does not reach back to it."""
        order = cursor_order(cursor)
        if order < cursor_order(self.base):
            return None
        start = bisect.bisect_right(self.orders, order)
        return self.events[start : start + READ_BATCH]


class EventHub:
    """Fans each campaign's events out from one reader to every subscriber."""

    def __init__(
        self, store: Store, max_per_tenant: int, buffer: int = 4096, readers: int = 32
    ) -> None:
        self.store = store
        self.pool = ThreadPoolExecutor(readers, thread_name_prefix="faultlab-events")
        """The feeds' waiting reads: never the default executor that store writes use."""
        self.max_per_tenant = max_per_tenant
        self.buffer = buffer
        self._feeds: dict[str, _Feed] = {}
        self._per_tenant: Counter[str] = Counter()

    async def subscribe(
        self, tenant: str, campaign_id: str, cursor: str, *, terminal: bool, keep_open: bool
    ) -> AsyncIterator[list[StoredEvent]]:
        """Every event after ``cursor``, in batches; ends after the campaign's terminal state
        event (or, when it was already ``terminal``, once drained) unless ``keep_open``."""
        if self._per_tenant[tenant] >= self.max_per_tenant:
            raise ResourceExhaustedError(
                f"tenant {tenant!r} already holds {self.max_per_tenant} event streams "
                "(max_streams_per_tenant); close one first"
            )
        self._per_tenant[tenant] += 1
        try:
            async for batch in self._events(campaign_id, cursor, terminal, keep_open):
                yield batch
        finally:
            self._per_tenant[tenant] -= 1

    async def _events(
        self, campaign_id: str, cursor: str, terminal: bool, keep_open: bool
    ) -> AsyncIterator[list[StoredEvent]]:
        if terminal and not keep_open:  # a finished campaign: read it to the end, once
            while batch := await asyncio.to_thread(
                self.store.read_events, campaign_id, cursor, READ_BATCH, 0.0
            ):
                yield batch
                cursor = batch[-1].cursor
            return
        feed = self._attach(campaign_id, cursor)
        try:
            async for batch in self._follow(feed, cursor, keep_open):
                yield batch
        finally:
            self._detach(feed)

    async def _follow(
        self, feed: _Feed, cursor: str, keep_open: bool
    ) -> AsyncIterator[list[StoredEvent]]:
        while True:
            batch = feed.after(cursor)
            if batch is None:  # behind the buffer: catch up from the store itself
                batch = await asyncio.to_thread(
                    self.store.read_events, feed.campaign_id, cursor, READ_BATCH, 0.0
                )
            if not batch:
                async with feed.changed:
                    if feed.after(cursor) == []:
                        if feed.error is not None:
                            raise feed.error
                        await feed.changed.wait()
                continue
            end = next((i for i, e in enumerate(batch) if is_terminal_event(e)), None)
            if end is not None and not keep_open:
                yield batch[: end + 1]
                return
            yield batch
            cursor = batch[-1].cursor

    def _attach(self, campaign_id: str, cursor: str) -> _Feed:
        feed = self._feeds.get(campaign_id)
        if feed is None or feed.task.done():  # none yet, or it stopped on a bad cursor
            feed = _Feed(self.store, campaign_id, cursor, self.buffer, self.pool)
            self._feeds[campaign_id] = feed
        feed.subscribers += 1
        return feed

    def _detach(self, feed: _Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0 and self._feeds.get(feed.campaign_id) is feed:
            del self._feeds[feed.campaign_id]
            feed.task.cancel()

    async def close(self) -> None:
        for feed in list(self._feeds.values()):
            feed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed.task
        self._feeds.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)
