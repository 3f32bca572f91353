"""Typed events: one encoding for both stores and the wire, and exact round trips."""

from __future__ import annotations

import pytest

from faultlab.events import (
    CampaignEvent,
    LogEvent,
    ProgressEvent,
    StateEvent,
    StoredEvent,
    TrialEvent,
    decode_event,
    encode_event,
    event_from_dict,
    event_from_proto,
    event_to_proto,
)
from faultlab.states import CampaignState

EVENTS: list[CampaignEvent] = [
    StateEvent(CampaignState.RUNNING, "started"),
    StateEvent(CampaignState.QUEUED),
    ProgressEvent(done=7, total=10, cached=2, failed=1),
    TrialEvent("k1", {"layer": "conv1", "bit": 30}, {"sdc": True, "margin": 1 / 7}, cached=True),
    LogEvent("shard retried", level="warning"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_dict_and_text_round_trip(event: CampaignEvent) -> None:
    assert event_from_dict(event.to_dict()) == event
    assert decode_event(encode_event(event)) == event
    assert event.to_dict()["type"] == event.type


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_proto_round_trip(event: CampaignEvent) -> None:
    stored = StoredEvent("17", 1234.5, event)
    msg = event_to_proto("c1", stored)
    assert (msg.campaign_id, msg.WhichOneof("body")) == ("c1", event.type)
    assert event_from_proto(msg) == stored


def test_the_storage_shape_is_flat_json() -> None:
    assert TrialEvent("k", {"a": 1}, {"b": 2.5}).to_dict() == {
        "type": "trial", "key": "k", "trial": {"a": 1}, "result": {"b": 2.5}, "cached": False,
    }
    assert ProgressEvent(1, 2).to_dict() == {
        "type": "progress", "done": 1, "total": 2, "cached": 0, "failed": 0,
    }
    assert StateEvent(CampaignState.FAILED, "boom").to_dict() == {
        "type": "state", "state": "FAILED", "message": "boom",
    }


def test_unknown_type_reads_as_a_log_line() -> None:
    assert event_from_dict({"type": "future", "message": "hi"}) == LogEvent("hi")
