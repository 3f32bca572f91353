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


FLUSH_SECONDS = 10.0
"""How long a shard waits, at its end, for its records to reach the sink."""
_SENT: ContextVar[list[Any] | None] = ContextVar("faultlab_progress_sent", default=None)


@contextlib.contextmanager
def activated(channel: Channel | None) -> Iterator[None]:
    """Makes ``channel`` the target of :func:`emit` while the block runs; on exit waits
    (at most :data:`FLUSH_SECONDS`) until the sink holds every record sent, so that the
    records of a shard are in the sink before its results reach the coordinator (whose last
    drain, when the rounds end, then finds them all; a short shard's records would otherwise
    still be in flight)."""
    token, sent = _ACTIVE.set(channel), _SENT.set([])
    try:
        yield
    finally:
        refs = _SENT.get() or []
        _ACTIVE.reset(token)
        _SENT.reset(sent)
        if refs:
            import ray

            with contextlib.suppress(Exception):  # progress, never a result: don't fail
                ray.wait(refs, num_returns=len(refs), timeout=FLUSH_SECONDS)


def emit(trial_index: int, record: dict[str, Any]) -> None:
    """Sends ``record`` about the shard's trial ``trial_index`` to the coordinator, if any."""
    channel = _ACTIVE.get()
    if channel is None:
        return
    sink, campaign_id, keys = channel
    ref = sink.push.remote(campaign_id, keys[trial_index], record)
    sent = _SENT.get()
    if sent is not None:
        sent.append(ref)


__all__ = ["Channel", "ProgressSink", "activated", "emit"]
