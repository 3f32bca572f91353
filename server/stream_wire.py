"""The wire pieces of event streams: cursors, each event's bytes and slices of events.

An event is serialised once (:func:`encode`) into its ``faultlab.v1.Event`` bytes and those
bytes framed as field 1 of an ``EventBatch``, so that concatenated framed events are a
serialised ``EventBatch`` (protobuf's encoding of a repeated field) shared by every subscriber
of a slice (:class:`EventSlice`). :mod:`faultlab.server.streams` fans them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from faultlab.events import StateEvent, StoredEvent, event_to_proto
from faultlab.server.caches import LruCache


def cursor_order(cursor: str) -> tuple[int, ...]:
    """A cursor as a sortable tuple (SQLite ``"17"``, Redis ``"1700000000000-3"``)."""
    return tuple(int(part) for part in cursor.split("-")) if cursor else ()


def is_terminal_event(stored: StoredEvent) -> bool:
    event = stored.event
    return isinstance(event, StateEvent) and event.state.is_terminal()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode(campaign_id: str, stored: StoredEvent) -> tuple[bytes, bytes]:
    """``(Event bytes, the same framed as field 1 of an EventBatch)``: concatenated framed
    events are a serialised ``EventBatch`` (protobuf's encoding of a repeated field)."""
    wire = event_to_proto(campaign_id, stored).SerializeToString()
    return wire, b"\n" + _varint(len(wire)) + wire


@dataclass(frozen=True)
class EventSlice:
    """Consecutive events of one campaign with their wire bytes."""

    events: Sequence[StoredEvent]
    messages: Sequence[bytes]
    """Each event's serialised ``faultlab.v1.Event`` (``StreamEvents``)."""
    batch: bytes
    """All of them as one serialised ``faultlab.v1.EventBatch`` (``StreamEventBatches``)."""
    ends: bool
    """The last event is the campaign's terminal state: the stream ends after it."""
    cursor: str
    """Cursor of the last event looked at: the last one sent, or one after it that the
    subscriber's type filter skipped (the next slice starts after it)."""


Types = frozenset[str] | None
"""A subscriber's event-type filter (``None``: every type; else it holds ``"state"``)."""


def wanted(stored: StoredEvent, types: Types) -> bool:
    return types is None or stored.event.type in types


def encode_slice(
    campaign_id: str, events: Sequence[StoredEvent], keep_open: bool,
    cache: LruCache[tuple[str, str], tuple[bytes, bytes]], types: Types = None,
) -> EventSlice:
    """A slice of events read from the store for one subscriber (a catch-up from behind a
    feed's buffer); ``cache`` shares the encoding among subscribers catching up together."""
    cut = None if keep_open else next(
        (i + 1 for i, e in enumerate(events) if is_terminal_event(e)), None
    )
    events = events if cut is None else events[:cut]
    cursor = events[-1].cursor if events else ""
    events = [e for e in events if wanted(e, types)]
    wire = []
    for stored in events:
        encoded = cache.get((campaign_id, stored.cursor))
        if encoded is None:
            encoded = encode(campaign_id, stored)
            cache.put((campaign_id, stored.cursor), encoded)
        wire.append(encoded)
    return EventSlice(events, [w for w, _ in wire], b"".join(f for _, f in wire),
                      cut is not None, cursor)
