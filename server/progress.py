"""Live records of running shards into a campaign's event log (:class:`CurveEvent`).

For an engine that ``streams_progress``, :func:`progress_channel` gives the campaign's run a
channel into the coordinator's :class:`~faultlab.workers.progress.ProgressSink` actor (one
per process, zero CPUs, created on first use) and, while the campaign's rounds run, drains
the sink every :data:`DRAIN_SECONDS` into ``CurveEvent`` s of the event log; a last drain
runs when the rounds end. Records are progress, not results: one lost in a crash is
never missed by a report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from faultlab.events import CurveEvent
from faultlab.server.scheduler import CampaignRun
from faultlab.server.store import Store
from faultlab.workers.engine import Engine
from faultlab.workers.progress import ProgressSink

DRAIN_SECONDS = 0.25
log = logging.getLogger("faultlab.coordinator")
_LOCK = threading.Lock()
_SINKS: dict[str, Any] = {}
"""The sink actor by Ray job id: a process that re-initialises Ray gets a fresh one."""


def _sink() -> Any:
    """The sink of this Ray session (None before the coordinator started Ray)."""
    import ray

    if not ray.is_initialized():
        return None
    job = ray.get_runtime_context().get_job_id()
    with _LOCK:
        if job not in _SINKS:
            _SINKS.clear()
            _SINKS[job] = ray.remote(num_cpus=0, max_restarts=-1)(ProgressSink).remote()
        return _SINKS[job]


async def _drain(store: Store, campaign_id: str, sink: Any) -> None:
    records = await sink.drain.remote(campaign_id)
    for key, record in records:
        await asyncio.to_thread(store.append_event, campaign_id, CurveEvent(key, record))


async def _pump(store: Store, campaign_id: str, sink: Any) -> None:
    while True:
        await asyncio.sleep(DRAIN_SECONDS)
        try:
            await _drain(store, campaign_id, sink)
        except Exception as exc:  # a lost record is lost progress, never a lost result
            log.warning("campaign %s: live records not drained: %s", campaign_id, exc)


@contextlib.asynccontextmanager
async def progress_channel(
    store: Store, campaign_id: str, run: CampaignRun, engine: Engine[Any]
) -> AsyncIterator[None]:
    """Opens ``run.progress`` for the block (a no-op for engines that send no records)."""
    sink = await asyncio.to_thread(_sink) if engine.streams_progress else None
    if sink is None:
        yield
        return
    run.progress = (sink, campaign_id)
    pump = asyncio.create_task(_pump(store, campaign_id, sink))
    try:
        yield
    finally:
        run.progress = None
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
        with contextlib.suppress(Exception):
            await _drain(store, campaign_id, sink)


__all__ = ["DRAIN_SECONDS", "progress_channel"]
