"""The hub's slices (unit test of :class:`~faultlab.server.streams.EventHub` over a list of
events standing in for a store's log): every event once, in order, per type filter; slices cut
past ``SLICE_BYTES``; the batch bytes are the events' ``EventBatch``; a watcher's feed
encodes no trial record."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from faultlab.events import ProgressEvent, StateEvent, StoredEvent, TrialEvent
from faultlab.server import streams
from faultlab.server.streams import EventHub, cursor_order
from faultlab.states import CampaignState
from faultlab.v1 import faultlab_pb2 as pb


class ListLog:
    """``read_events`` of a finished campaign's log held in a list."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events

    def read_events(self, campaign_id: str, after: str, limit: int, wait_s: float
                    ) -> list[StoredEvent]:
        order = cursor_order(after)
        return [e for e in self.events if cursor_order(e.cursor) > order][:limit]


def _log() -> list[StoredEvent]:
    events: list[Any] = [StateEvent(CampaignState.RUNNING)]
    for i in range(600):
        events.append(TrialEvent(f"k{i}", {"layer": "conv1", "pad": "x" * 900}, {"i": i}))
        if i % 50 == 49:
            events.append(ProgressEvent(i + 1, 600))
    events.append(StateEvent(CampaignState.SUCCEEDED))
    return [StoredEvent(str(n + 1), 1000.0 + n, e) for n, e in enumerate(events)]


async def _follow(hub: EventHub, types: frozenset[str] | None) -> list[Any]:
    return [piece async for piece in hub.subscribe(
        "t", "c", "", terminal=True, keep_open=False, types=types)]


@pytest.mark.parametrize("types", [None, frozenset({"state", "progress"})],
                         ids=["all", "watch"])
def test_slices_carry_every_wanted_event_once_and_cut_by_bytes(
    monkeypatch: pytest.MonkeyPatch, types: frozenset[str] | None
) -> None:
    monkeypatch.setattr(streams, "SLICE_BYTES", 50_000)
    encoded: list[str] = []
    real = streams.encode
    monkeypatch.setattr(streams, "encode", lambda cid, e: (encoded.append(e.event.type),
                                                           real(cid, e))[1])
    log = _log()
    wanted = [e for e in log if types is None or e.event.type in types]

    async def run() -> list[Any]:
        hub = EventHub(ListLog(log), max_per_tenant=4, wait_s=0.05)  # type: ignore[arg-type]
        try:
            return await _follow(hub, types)
        finally:
            await hub.close()

    pieces = asyncio.run(run())
    assert [e.cursor for p in pieces for e in p.events] == [e.cursor for e in wanted]
    assert pieces[-1].ends and not any(p.ends for p in pieces[:-1])
    for piece in pieces:
        batch = pb.EventBatch.FromString(piece.batch)
        assert [m.cursor for m in batch.events] == [e.cursor for e in piece.events]
        assert len(piece.batch) <= 50_000 + 1200  # cut once past the bound: one event over
    if types is None:
        assert len(pieces) > 5
    else:
        assert "trial" not in encoded  # nobody wanted them: never serialised


def test_subscribers_behind_the_buffer_share_one_store_read_per_cursor() -> None:
    """A feed whose buffer no longer reaches back (it holds 16 events here): 40 subscribers
    from the start catch up from the store, and each cursor's slice is read once for all of
    them, not once each (the spiral of reads a lag would start)."""
    log = _log()
    store = ListLog(log)
    reads: list[str] = []
    real = store.read_events

    def counted(campaign_id: str, after: str, limit: int, wait_s: float) -> list[StoredEvent]:
        if wait_s == 0.0:
            reads.append(after)
        return real(campaign_id, after, limit, wait_s)

    store.read_events = counted  # type: ignore[method-assign]

    async def run() -> list[list[Any]]:
        hub = EventHub(store, max_per_tenant=64, buffer=16, wait_s=0.05)  # type: ignore[arg-type]
        try:
            await _follow(hub, None)  # the feed has read the whole log: its buffer is the end
            reads.clear()
            return await asyncio.gather(*(_follow(hub, None) for _ in range(40)))
        finally:
            await hub.close()

    followed = asyncio.run(run())
    every = [e.cursor for e in log]
    for pieces in followed:
        assert [e.cursor for p in pieces for e in p.events] == every
    catch_ups = len(log) // streams.READ_BATCH + 1
    assert len(reads) <= 2 * catch_ups, reads  # 40 subscribers: one read per cursor
