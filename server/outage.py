"""Store outages survived: a campaign's store calls wait with backoff until the store answers.

:func:`persist` retries a call while it raises
:class:`~faultlab.errors.UnavailableError` (Redis restarting, SQLite file locked), with
exponential backoff up to :data:`MAX_BACKOFF_S`, and once the store answers again appends a
:class:`~faultlab.events.LogEvent` saying how long the campaign waited. Every call it retries
is idempotent in the store (recording a DONE trial again is a no-op, ``add_trials`` ignores
known keys, a transition is a compare-and-set), so a write whose reply was lost in the outage
is neither lost nor doubled. Other errors — a lost lease included — pass through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faultlab.errors import UnavailableError
from faultlab.events import LogEvent
from faultlab.server.store import Store

T = TypeVar("T")
log = logging.getLogger("faultlab.coordinator")

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


async def persist(
    store: Store, campaign_id: str, call: Callable[..., Awaitable[T]], *args: Any
) -> T:
    """``await call(*args)``, retried while the store is unreachable (see the module)."""
    began: float | None = None
    backoff = FIRST_BACKOFF_S
    while True:
        try:
            result = await call(*args)
        except UnavailableError as exc:
            if began is None:
                began = time.monotonic()
                log.warning("campaign %s waits for the store: %s", campaign_id, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            continue
        if began is not None:
            waited = time.monotonic() - began
            log.warning("campaign %s: the store is back after %.1f s", campaign_id, waited)
            message = f"the store was unreachable for {waited:.1f} s; the campaign resumed"
            await persist(
                store, campaign_id, asyncio.to_thread, store.append_event, campaign_id,
                LogEvent(message, "warning"),
            )
        return result
