"""The typed event log of a campaign: one schema for both stores, the servicer and the SDK.

Five kinds of event, each a frozen dataclass with a ``type`` tag:

* :class:`StateEvent` — the campaign moved to ``state`` (written with the guarded transition),
* :class:`ProgressEvent` — counters after a batch of results was recorded,
* :class:`TrialEvent` — one trial finished (its replayable record and its result),
* :class:`LogEvent` — a line for the user (``level`` is ``info``, ``warning`` or ``error``),
* :class:`CurveEvent` — a live record of trial ``key`` while it runs (e.g. a point of a
  training cell's learning curve), sent by the worker through a progress channel.

One encoding serves storage and the JSON side of the wire: :meth:`to_dict` is a flat JSON
object whose ``type`` names the kind, :func:`event_from_dict` is its inverse (SQLite stores
the JSON text, Redis stream entries carry it, the Redis ``record_results`` script splices
exactly this shape). :func:`event_to_proto` / :func:`event_from_proto` convert to and from the
``faultlab.v1.Event`` message; they import the protobuf module only when called, so a Ray
worker that imports this module loads no RPC code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from faultlab.states import CampaignState

if TYPE_CHECKING:
    from faultlab.v1 import faultlab_pb2 as pb


@dataclass(frozen=True)
class StateEvent:
    """The campaign entered ``state``; ``message`` says why (may be empty)."""

    state: CampaignState
    message: str = ""
    type: ClassVar[str] = "state"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "state": self.state.value, "message": self.message}


@dataclass(frozen=True)
class ProgressEvent:
    """The campaign's counters right after results were recorded."""

    done: int
    total: int
    cached: int = 0
    failed: int = 0
    type: ClassVar[str] = "progress"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "done": self.done, "total": self.total,
                "cached": self.cached, "failed": self.failed}


@dataclass(frozen=True)
class TrialEvent:
    """Trial ``key`` finished with ``result`` (``cached``: answered by the result cache)."""

    key: str
    trial: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    type: ClassVar[str] = "trial"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "key": self.key, "trial": self.trial,
                "result": self.result, "cached": self.cached}


@dataclass(frozen=True)
class LogEvent:
    """A line for the user, e.g. a retried shard or a resumed campaign."""

    message: str
    level: str = "info"
    type: ClassVar[str] = "log"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "level": self.level, "message": self.message}


@dataclass(frozen=True)
class CurveEvent:
    """A live record of the running trial ``key`` (``point``: a small JSON object)."""

    key: str
    point: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "curve"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "key": self.key, "point": self.point}


CampaignEvent = StateEvent | ProgressEvent | TrialEvent | LogEvent | CurveEvent
"""Any event of a campaign's log."""


def event_from_dict(data: dict[str, Any]) -> CampaignEvent:
    """The inverse of ``to_dict``. An unknown ``type`` reads as a log line (forward compatible)."""
    kind = data.get("type")
    if kind == "state":
        return StateEvent(CampaignState(str(data["state"])), str(data.get("message", "")))
    if kind == "progress":
        return ProgressEvent(int(data.get("done", 0)), int(data.get("total", 0)),
                             int(data.get("cached", 0)), int(data.get("failed", 0)))
    if kind == "trial":
        return TrialEvent(str(data["key"]), dict(data.get("trial") or {}),
                          dict(data.get("result") or {}), bool(data.get("cached")))
    if kind == "curve":
        return CurveEvent(str(data["key"]), dict(data.get("point") or {}))
    return LogEvent(str(data.get("message", "")), str(data.get("level", "info")))


def encode_event(event: CampaignEvent) -> str:
    """The storage text of an event: the JSON of ``to_dict``."""
    return json.dumps(event.to_dict())


def decode_event(text: str) -> CampaignEvent:
    return event_from_dict(json.loads(text))


@dataclass(frozen=True)
class StoredEvent:
    """An event as a store returns it: its position in the log and when it was written."""

    cursor: str
    """Opaque, store-specific; ``read_events(after=cursor)`` resumes right after it."""
    time: float
    event: CampaignEvent


def event_to_proto(campaign_id: str, stored: StoredEvent) -> pb.Event:
    """The ``faultlab.v1.Event`` message of a stored event."""
    from faultlab.v1 import faultlab_pb2 as pb

    msg = pb.Event(cursor=stored.cursor, campaign_id=campaign_id, time=stored.time)
    event = stored.event
    if isinstance(event, StateEvent):
        msg.state.CopyFrom(pb.StateChange(state=event.state.value, message=event.message))
    elif isinstance(event, ProgressEvent):
        msg.progress.CopyFrom(pb.Progress(done=event.done, total=event.total,
                                          cached=event.cached, failed=event.failed))
    elif isinstance(event, TrialEvent):
        msg.trial.CopyFrom(pb.TrialDone(key=event.key, trial_json=json.dumps(event.trial),
                                        result_json=json.dumps(event.result),
                                        cached=event.cached))
    elif isinstance(event, CurveEvent):
        msg.curve.CopyFrom(pb.CurvePoint(key=event.key, point_json=json.dumps(event.point)))
    else:
        msg.log.CopyFrom(pb.LogLine(level=event.level, message=event.message))
    return msg


def event_from_proto(msg: pb.Event) -> StoredEvent:
    """The inverse of :func:`event_to_proto` (the campaign id is the message's own)."""
    from faultlab.v1 import faultlab_pb2 as pb

    body = msg.WhichOneof("body")
    event: CampaignEvent
    if body == "state":
        event = StateEvent(CampaignState(pb.CampaignState.Name(msg.state.state)),
                           msg.state.message)
    elif body == "progress":
        p = msg.progress
        event = ProgressEvent(p.done, p.total, p.cached, p.failed)
    elif body == "trial":
        t = msg.trial
        event = TrialEvent(t.key, json.loads(t.trial_json), json.loads(t.result_json), t.cached)
    elif body == "curve":
        event = CurveEvent(msg.curve.key, json.loads(msg.curve.point_json))
    else:
        event = LogEvent(msg.log.message, msg.log.level)
    return StoredEvent(msg.cursor, msg.time, event)
