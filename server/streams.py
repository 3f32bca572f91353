"""Event streams without a thread per subscriber: one reader per campaign, fanned out.

:class:`EventHub` keeps one :class:`_Feed` per campaign that has live subscribers. A feed is
one asyncio task whose store read waits for news in a worker thread (Redis ``XREAD BLOCK`` on
its own connection pool; SQLite wakes on a commit of this process and polls otherwise), so
500 subscribers of a campaign cost one thread, not 500.

The fan-out does as little per subscriber as it can, because it shares the event loop with
the campaigns' runners:

* each event is serialised once, when a slice first needs it (its ``faultlab.v1.Event`` bytes
  and their framing as an ``EventBatch`` element: a feed followed only by watchers never
  encodes a trial record), and every subscriber sends those bytes;
* a subscriber wakes once per read of the feed, not once per event, and takes everything
  after its cursor as one :class:`EventSlice` — one ``EventBatch`` message
  (``StreamEventBatches``), whose bytes the subscribers at the same cursor share;
* waking is one :class:`asyncio.Event` per read and type filter (no lock handed from waiter
  to waiter), and where the campaign's terminal event lies is recorded once, by the feed;
* a subscriber may ask for some event types only (``StreamEventsRequest.types``: a watcher
  wants state and progress, not every trial record): it is woken only by reads that brought
  one, and the filtered slices are built once per cursor and filter.

A subscriber serves itself from the feed's bounded buffer when its cursor is inside it and
from a non-blocking store read otherwise (a catch-up from an old cursor, read once for all the
subscribers behind the buffer at that cursor), so each one sees every event once, in order.
Subscribers per tenant are bounded (RESOURCE_EXHAUSTED beyond). During a store outage the
feed retries with backoff and waiting subscribers end with UNAVAILABLE (the SDK resumes from
its cursor).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from faultlab.errors import FaultlabError, ResourceExhaustedError, UnavailableError
from faultlab.events import StoredEvent
from faultlab.server.caches import LruCache
from faultlab.server.store import CampaignRecord, Store
from faultlab.server.stream_wire import (
    EventSlice,
    Types,
    cursor_order,
    encode,
    encode_slice,
    is_terminal_event,
)

T = TypeVar("T")

READ_BATCH = 500
"""Most events one store read (and one slice) holds."""
SLICE_BYTES = 1 << 20
"""A slice stops growing past this many bytes (one message stays far below gRPC's limit)."""
SPACING_PER_SUBSCRIBER_S = 200e-6
"""Spacing of a busy feed's wake-ups per subscriber: four times what one wake-up costs it."""
CATCH_UP_BYTES = 64 << 20
"""Bytes of catch-up slices (read from the store behind a feed's buffer) kept for the other
subscribers at the same cursor."""
FEED_LINGER_S = 5.0
"""How long a feed outlives its last subscriber (the next wave reuses its buffer)."""
_MAX_BACKOFF_S = 5.0


class _Feed:
    """One campaign's reader task and its buffer of recent events, serialised once."""

    def __init__(
        self, store: Store, campaign_id: str, start: str, buffer: int, pool: ThreadPoolExecutor,
        wait_s: float, batch_window_s: float,
    ) -> None:
        self.store = store
        self.pool = pool
        self.wait_s = wait_s
        self.campaign_id = campaign_id
        self.base = start
        """Cursor just before the oldest buffered event: the buffer covers cursors >= it."""
        self.base_order = cursor_order(start)
        self.head = start
        self.first = 0
        """Position (counted from the feed's start) of the oldest buffered event."""
        self.events: list[StoredEvent] = []
        self.orders: list[tuple[int, ...]] = []
        self.messages: list[bytes | None] = []
        self.framed: list[bytes | None] = []
        """Each buffered event's wire bytes, encoded when a slice first needs them (a feed
        followed only by watchers never encodes a trial record)."""
        self.types: list[str] = []
        """Each buffered event's type (what subscribers' filters match)."""
        self.terminal: int | None = None
        """Position of the campaign's terminal state event, once read."""
        self.buffer = buffer
        self.subscribers = 0
        self.error: FaultlabError | None = None
        """Why the last read failed: UNAVAILABLE (retried) or, e.g., a bad cursor (final)."""
        self._news: dict[Types, asyncio.Event] = {}
        """Per type filter: set (and replaced) on every read that brought events it wants,
        an error, or the end of the log (see :meth:`news`)."""
        self._slices: LruCache[tuple[int, int, Types, bool], EventSlice] = LruCache(16)
        self.batch_window_s = batch_window_s
        self.notified_at = 0.0
        """When subscribers were last woken (``time.monotonic()``)."""
        self.at_end = False
        """The latest read reached the end of the log (a caught-up feed waits for news)."""
        self.task = asyncio.get_running_loop().create_task(
            self._read(), name=f"events-{campaign_id}"
        )

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:  # no wait while behind the log's end: only a caught-up feed waits for news
                batch = await self._store_read(self.head, self.wait_s if self.at_end else 0.0)
            except UnavailableError as exc:
                self._publish([], exc, True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            except FaultlabError as exc:  # e.g. a cursor of the other store's shape
                self._publish([], exc, True)
                return
            except Exception as exc:  # the store was closed under it (shutdown): retryable
                self._publish([], UnavailableError(f"the event reader stopped: {exc}"), True)
                return
            backoff = 0.1
            reached_end = len(batch) < READ_BATCH
            if batch and reached_end:
                batch += await self._coalesce(batch[-1].cursor)
            if batch or self.error is not None or reached_end != self.at_end:
                wake_all = self.error is not None or reached_end != self.at_end
                self.at_end = reached_end
                self._publish(batch, None, wake_all)  # news, the store is back, or the end

    async def _store_read(self, after: str, wait_s: float) -> list[StoredEvent]:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, self.store.read_events, self.campaign_id, after, READ_BATCH, wait_s
        )

    async def _coalesce(self, after: str) -> list[StoredEvent]:
        """Waits out the spacing of wake-ups, then reads what arrived meanwhile (no wait).

        A wake-up costs each subscriber one gRPC message (about 50 µs of the event loop), so
        wake-ups are spaced by :data:`SPACING_PER_SUBSCRIBER_S` per subscriber, at most the
        hub's ``batch_window_s``: the fan-out stays near a quarter of one core however busy
        the campaign, and the first event after a quiet spell goes out at once."""
        spacing = min(self.batch_window_s, self.subscribers * SPACING_PER_SUBSCRIBER_S)
        delay = self.notified_at + spacing - time.monotonic()
        if delay <= 0:
            return []
        await asyncio.sleep(delay)
        return await self._store_read(after, 0.0)

    def news(self, types: Types) -> asyncio.Event:
        """What a subscriber with filter ``types`` waits on (taken before it looks at the
        buffer, so that no read between the two is missed)."""
        event = self._news.get(types)
        if event is None:
            event = self._news[types] = asyncio.Event()
        return event

    def _publish(self, batch: list[StoredEvent], error: FaultlabError | None,
                 wake_all: bool) -> None:
        for stored in batch:
            if self.terminal is None and is_terminal_event(stored):
                self.terminal = self.first + len(self.events)
            self.events.append(stored)
            self.orders.append(cursor_order(stored.cursor))
            self.messages.append(None)
            self.framed.append(None)
            self.types.append(stored.event.type)
        if batch:
            self.head = batch[-1].cursor
        if len(self.events) > 2 * self.buffer:  # trimmed in bulk: amortised O(1) per event
            cut = len(self.events) - self.buffer
            self.base = self.events[cut - 1].cursor
            self.base_order = cursor_order(self.base)
            self.first += cut
            del self.events[:cut], self.orders[:cut], self.messages[:cut], self.framed[:cut]
            del self.types[:cut]
        self.error = error
        self.notified_at = time.monotonic()
        present = {stored.event.type for stored in batch}
        for types in [t for t in self._news if wake_all or (present if t is None else t & present)]:
            self._news.pop(types).set()  # a filter that wants none of them sleeps on

    def after(self, cursor: str, keep_open: bool, types: Types = None) -> EventSlice | None:
        """The buffered events after ``cursor`` that ``types`` wants, as one slice (empty when
        there are none yet); None when the buffer does not reach back to ``cursor``."""
        if cursor == self.head:  # the common case after a slice: nothing new, nothing parsed
            return EventSlice((), (), b"", False, cursor)
        order = cursor_order(cursor)
        if order < self.base_order:
            return None
        start = bisect.bisect_right(self.orders, order)
        stop = min(len(self.events), start + READ_BATCH)
        ends = False
        if not keep_open and self.terminal is not None and start <= self.terminal - self.first:
            terminal = self.terminal - self.first
            if terminal < stop:
                stop, ends = terminal + 1, True
        if start >= stop:
            return EventSlice((), (), b"", False, cursor)
        return self._slice(start, stop, types, ends)

    def _slice(self, start: int, stop: int, types: Types, ends: bool) -> EventSlice:
        """Buffer positions ``[start, stop)`` filtered by ``types`` (and cut once past
        :data:`SLICE_BYTES`), built once for every subscriber there (the joined
        ``EventBatch`` bytes included)."""
        key = (self.first + start, self.first + stop, types, ends)
        piece = self._slices.get(key)
        if piece is None:
            picked: list[int] = []
            size, last = 0, stop - 1
            for i in range(start, stop):
                if types is not None and self.types[i] not in types:
                    continue
                if picked and size > SLICE_BYTES:
                    last, ends = picked[-1], False  # full: the rest goes in the next slice
                    break
                picked.append(i)
                size += len(self._encoded(i)[1])
            piece = EventSlice([self.events[i] for i in picked],
                               [self._encoded(i)[0] for i in picked],
                               b"".join([self._encoded(i)[1] for i in picked]), ends,
                               self.events[last].cursor)
            self._slices.put(key, piece)
        return piece

    def _encoded(self, i: int) -> tuple[bytes, bytes]:
        """Buffer position ``i``'s ``(Event bytes, framed)``, encoded once."""
        wire, framed = self.messages[i], self.framed[i]
        if wire is None or framed is None:
            wire, framed = encode(self.campaign_id, self.events[i])
            self.messages[i], self.framed[i] = wire, framed
        return wire, framed


class EventHub:
    """Fans each campaign's events out from one reader to every subscriber."""

    def __init__(
        self, store: Store, max_per_tenant: int, buffer: int = 4096, readers: int = 32,
        wait_s: float = 1.0, batch_window_s: float = 0.1,
    ) -> None:
        self.store = store
        self.pool = ThreadPoolExecutor(readers, thread_name_prefix="faultlab-events")
        """The feeds' waiting reads: never the default executor that store writes use."""
        self.max_per_tenant = max_per_tenant
        self.buffer = buffer
        self.wait_s = wait_s
        """Longest single wait of a feed's store read (it loops while the campaign runs)."""
        self.batch_window_s = batch_window_s
        """Most time a busy feed's wake-ups are spaced by (see :meth:`_Feed._coalesce`)."""
        self._feeds: dict[str, _Feed] = {}
        self._encoded: LruCache[tuple[str, str], tuple[bytes, bytes]] = LruCache(65536)
        """Encodings of events read by catch-ups, shared by subscribers catching up together."""
        self._per_tenant: Counter[str] = Counter()
        self._flights: dict[tuple[str, str, Types, bool], asyncio.Future[EventSlice]] = {}
        self._caught: LruCache[tuple[str, str, Types, bool], EventSlice] = LruCache(
            4096, CATCH_UP_BYTES, lambda piece: len(piece.batch) + 64)

    async def campaign(self, campaign_id: str) -> CampaignRecord | None:
        """The campaign's record, read on the hub's threads (off the runners' executor)."""
        return await self._off_loop(self.store.get_campaign, campaign_id)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def subscribe(
        self, tenant: str, campaign_id: str, cursor: str, *, terminal: bool, keep_open: bool,
        types: Types = None,
    ) -> AsyncIterator[EventSlice]:
        """Every event after ``cursor`` of the ``types`` wanted, in slices; ends after the
        campaign's terminal state event (or, when it was already ``terminal``, once drained)
        unless ``keep_open``. A filtered subscriber is woken only by events it wants."""
        if self._per_tenant[tenant] >= self.max_per_tenant:
            raise ResourceExhaustedError(
                f"tenant {tenant!r} already holds {self.max_per_tenant} event streams "
                "(max_streams_per_tenant); close one first"
            )
        self._per_tenant[tenant] += 1
        feed = self._attach(campaign_id, cursor)
        try:  # one generator from the feed to gRPC: each message passes one frame
            while True:
                news = feed.news(types)  # taken before looking: no read in between is missed
                piece = feed.after(cursor, keep_open, types)
                if piece is None:  # behind the buffer: catch up from the store itself
                    piece = await self._catch_up(campaign_id, cursor, keep_open, types)
                if not piece.events and piece.cursor not in ("", cursor):
                    cursor = piece.cursor  # only events the filter skips: look further
                    continue
                if not piece.events:
                    if feed.error is not None:
                        raise feed.error
                    if terminal and feed.at_end and not keep_open:
                        return  # it was finished when we came, and we have read it all
                    await news.wait()
                    continue
                yield piece
                if piece.ends:
                    return
                cursor = piece.cursor
        finally:
            self._per_tenant[tenant] -= 1
            self._detach(feed)

    async def _catch_up(self, campaign_id: str, cursor: str, keep_open: bool,
                        types: Types) -> EventSlice:
        """The slice after ``cursor`` read from the store, read once for every subscriber
        behind the buffer at that cursor: those that fell behind together (a campaign writing
        faster than its whole-log subscribers take) would otherwise each read and parse the
        same events, and a lag would grow into a spiral of store reads. In-flight reads are
        shared, finished ones kept (:data:`CATCH_UP_BYTES` in all)."""
        key = (campaign_id, cursor, types, keep_open)
        piece = self._caught.get(key)
        if piece is not None:
            return piece
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._read_slice(*key))
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        piece = await asyncio.shield(flight)
        if piece.events or piece.cursor not in ("", cursor):  # an empty read is never kept
            self._caught.put(key, piece)
        return piece

    async def _read_slice(self, campaign_id: str, cursor: str, types: Types,
                          keep_open: bool) -> EventSlice:
        batch = await self._off_loop(self.store.read_events, campaign_id, cursor, READ_BATCH, 0.0)
        return encode_slice(campaign_id, batch, keep_open, self._encoded, types)

    def _attach(self, campaign_id: str, cursor: str) -> _Feed:
        feed = self._feeds.get(campaign_id)
        if feed is None or feed.task.done():  # none yet, or it stopped on a bad cursor
            feed = _Feed(self.store, campaign_id, cursor, self.buffer, self.pool, self.wait_s,
                         self.batch_window_s)
            self._feeds[campaign_id] = feed
        feed.subscribers += 1
        return feed

    def _detach(self, feed: _Feed) -> None:
        feed.subscribers -= 1
        if feed.subscribers == 0:  # kept a little while: subscribers often come in waves
            asyncio.get_running_loop().call_later(FEED_LINGER_S, self._retire, feed)

    def _retire(self, feed: _Feed) -> None:
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
