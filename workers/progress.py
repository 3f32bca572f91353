"""Progress records a running shard sends to its coordinator (live learning curves).

A coordinator that wants them hands each shard task a *channel*, ``(sink, campaign id, keys
of the shard's trials)``, where ``sink`` is a :class:`ProgressSink` Ray actor. The task
activates it for the engine's ``run_shard`` (:func:`activated`); the engine calls
:func:`emit` with the index of a trial in its shard and a small JSON record; the coordinator
drains the sink and writes the records to the campaign's event log. Without a channel
(in-process runs, replays) :func:`emit` does nothing. Emission is fire-and-forget: a record
is progress, never a result, and losing one loses nothing a trial records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

Channel = tuple[Any, str, list[str]]
"""``(ProgressSink actor handle, campaign id, the shard's trial keys)``."""

_ACTIVE: ContextVar[Channel | None] = ContextVar("faultlab_progress", default=None)


class ProgressSink:
    """A Ray actor (``ray.remote(num_cpus=0)(ProgressSink)``): records by campaign, drained
    by the coordinator."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def push(self, campaign_id: str, key: str, record: dict[str, Any]) -> None:
        self.records.setdefault(campaign_id, []).append((key, record))

    def drain(self, campaign_id: str) -> list[tuple[str, dict[str, Any]]]:
        return self.records.pop(campaign_id, [])


@contextlib.contextmanager
def activated(channel: Channel | None) -> Iterator[None]:
    """Makes ``channel`` the target of :func:`emit` while the block runs."""
    token = _ACTIVE.set(channel)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def emit(trial_index: int, record: dict[str, Any]) -> None:
    """Sends ``record`` about the shard's trial ``trial_index`` to the coordinator, if any."""
    channel = _ACTIVE.get()
    if channel is None:
        return
    sink, campaign_id, keys = channel
    sink.push.remote(campaign_id, keys[trial_index], record)


__all__ = ["Channel", "ProgressSink", "activated", "emit"]
