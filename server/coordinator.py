"""The coordinator: the one object the servicer talks to.

A thin facade over three parts, each with a narrow job:

* :class:`~faultlab.server.lifecycle.CampaignLifecycle` — submission and limits, guarded
  state transitions, recovery, reads (campaigns, result pages, events, reports);
* :class:`~faultlab.server.scheduler.ShardScheduler` — Ray: ``prepare``, shards sized to
  ``execution.shard_seconds``, at most ``max_inflight`` in flight, retries, cancellation;
* :class:`~faultlab.server.runner.CampaignRunner` — one asyncio task per campaign joining
  the two: plan, cache check, schedule, record, end SUCCEEDED / FAILED / CANCELLED;
* :class:`~faultlab.server.artifacts.ArtifactUploads` — uploaded files, per tenant;
* :class:`~faultlab.server.lease.CoordinatorLease` — the store's one-coordinator lease
  (:meth:`Coordinator.claim_store`), whose token fences every store write;
* :class:`~faultlab.server.streams.EventHub` — one event reader per campaign, fanned out to
  every StreamEvents subscriber.

A runner whose task ends while its campaign is still active is relaunched (up to
:data:`RELAUNCHES` times, then the campaign ends FAILED): no campaign sits RUNNING without one.

After a restart :meth:`Coordinator.recover` resumes every non-terminal campaign before the
server accepts requests: RUNNING trials go back to PENDING, the plan is replayed (it is
deterministic), DONE trials are skipped, and only missing trials are computed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from faultlab.errors import NotFoundError
from faultlab.events import StoredEvent
from faultlab.report import Report
from faultlab.server.artifacts import ArtifactUploads
from faultlab.server.caches import PLAN_CACHE_BYTES, LruCache
from faultlab.server.config import CoordinatorConfig
from faultlab.server.lease import CoordinatorLease
from faultlab.server.lifecycle import CampaignLifecycle, visible
from faultlab.server.runner import CampaignRunner, PlanCaches
from faultlab.server.scheduler import CampaignRun, ShardScheduler
from faultlab.server.store import CampaignRecord, ResultText, Store
from faultlab.server.store.base import ArtifactInfo
from faultlab.server.streams import EventHub, EventSlice
from faultlab.spec import CampaignSpec, parse_spec
from faultlab.workers import get_engine

log = logging.getLogger("faultlab.coordinator")
RELAUNCHES = 3
"""Runner relaunches of a campaign whose runner ended while it was still active."""


class Coordinator:
    """Campaigns on top of a :class:`Store` and a Ray cluster (one per server process)."""

    def __init__(self, store: Store, config: CoordinatorConfig | None = None) -> None:
        self.config = config or CoordinatorConfig()
        self.lifecycle = CampaignLifecycle(store, self.config)
        self.artifacts = ArtifactUploads(store, self.config)
        self.scheduler = ShardScheduler(self.config)
        self.caches = PlanCaches(
            meta=LruCache(self.config.cache_entries),
            first_plans=LruCache(self.config.plan_cache_entries, max_weight=PLAN_CACHE_BYTES,
                                 weigh=lambda plan: plan.nbytes),
        )
        self._runs: dict[str, CampaignRun] = {}
        self._streamed: LruCache[str, tuple[str, bool]] = LruCache(4096)
        """(owner, terminal) of campaigns streamed lately: a finished one needs no read."""
        self.hub = EventHub(store, self.config.max_streams_per_tenant,
                            buffer=self.config.stream_buffer_events,
                            batch_window_s=self.config.stream_batch_window_s)
        self.lease = CoordinatorLease(store, self.config.lease_ttl_s, self._lease_lost)

    # --- process lifecycle -----------------------------------------------------------
    def start_ray(self) -> None:
        self.scheduler.start_ray()

    async def claim_store(self) -> int:
        """Takes the store's lease (before :meth:`recover`); refuses while another
        coordinator holds it (see :mod:`faultlab.server.lease`). Returns the fencing token."""
        return await self.lease.acquire(self.config.lease_wait_s)

    def _lease_lost(self) -> None:
        """Another coordinator owns the store now: stop every run (without writing)."""
        for run in self._runs.values():
            if run.task is not None:
                run.task.cancel()

    async def recover(self) -> list[str]:
        """Resumes every non-terminal campaign in the store (call before serving)."""
        active = await self.lifecycle.recover()
        for record in active:
            self._launch(record.id)
        return [r.id for r in active]

    async def shutdown(self) -> None:
        for run in list(self._runs.values()):
            if run.task and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task
        await self.hub.close()
        await self.lease.release()

    def close(self) -> None:
        """Releases the store (after :meth:`shutdown`)."""
        self.lifecycle.close()

    def active_ids(self) -> list[str]:
        """Ids of the campaigns this coordinator is running now."""
        return list(self._runs)

    async def wait_idle(self) -> None:
        """Waits until every running campaign task has finished (tests, shutdown)."""
        running = [r.task for r in self._runs.values() if r.task is not None]
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    # --- requests --------------------------------------------------------------------
    async def submit(self, owner: str, spec_text: str, request_id: str = "") -> CampaignRecord:
        """Validates and enqueues a campaign (no Ray work on bad input); a repeated
        ``request_id`` returns the first campaign."""
        record, created = await self.lifecycle.submit(owner, spec_text, request_id)
        if created:
            self._launch(record.id)
        return record

    async def validate(self, owner: str, spec_text: str) -> CampaignSpec:
        """Checks a spec exactly as :meth:`submit` would, and stores nothing."""
        return await self.lifecycle.validate(owner, spec_text)

    async def get(self, owner: str | None, campaign_id: str) -> CampaignRecord:
        return await self.lifecycle.get(owner, campaign_id)

    async def list_campaigns(
        self, owner: str | None, limit: int, offset: int
    ) -> list[CampaignRecord]:
        return await self.lifecycle.list_campaigns(owner, limit, offset)

    async def cancel(self, owner: str | None, campaign_id: str) -> CampaignRecord:
        record = await self.lifecycle.get(owner, campaign_id)
        if record.state.is_terminal():
            return record
        run = self._runs.get(campaign_id)
        if run is not None:
            run.cancelled = True
            self.scheduler.cancel(run)
        await self.lifecycle.cancel(campaign_id)
        return await self.lifecycle.get(owner, campaign_id)

    async def results_page(
        self, owner: str | None, campaign_id: str, start_index: int, limit: int
    ) -> tuple[CampaignRecord, list[ResultText]]:
        return await self.lifecycle.results_page(owner, campaign_id, start_index, limit)

    async def read_events(
        self, owner: str | None, campaign_id: str, after: str, limit: int
    ) -> tuple[bool, list[StoredEvent]]:
        return await self.lifecycle.read_events(owner, campaign_id, after, limit)

    async def stream_events(
        self, owner: str, campaign_id: str, cursor: str, keep_open: bool,
        types: frozenset[str] | None = None,
    ) -> AsyncIterator[EventSlice]:
        """The campaign's events after ``cursor``, live, in slices serialised once, from the
        campaign's one reader (:class:`~faultlab.server.streams.EventHub`).

        The record is read on the hub's own threads (500 subscribers arriving at once never
        queue ahead of the runners' store writes) and kept: its owner never changes, and a
        state seen as not yet terminal only means the stream ends at the terminal event."""
        seen = self._streamed.get(campaign_id)
        if seen is None:
            record = visible(await self.hub.campaign(campaign_id), owner, campaign_id)
            seen = (record.owner, record.state.is_terminal())
            self._streamed.put(campaign_id, seen)
        elif seen[0] != owner:
            raise NotFoundError("campaign", campaign_id)
        return self.hub.subscribe(owner, campaign_id, cursor, terminal=seen[1],
                                  keep_open=keep_open, types=types)

    async def report(self, owner: str | None, campaign_id: str) -> Report:
        return await self.lifecycle.report(owner, campaign_id)

    async def replay(
        self, owner: str | None, campaign_id: str, trial_key: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], bool]:
        """``(trial, stored result, replayed result, identical)`` of one finished trial."""
        record, row, stored = await self.lifecycle.finished_trial(owner, campaign_id, trial_key)
        blobs = await self.lifecycle.artifacts(record.owner, parse_spec(record.spec_json))
        artifacts = await self.scheduler.put_artifacts(blobs)
        replayed = await self.scheduler.replay(record.spec_json, row.trial, artifacts)
        same = get_engine(record.kind).outcomes_equal(stored, replayed)
        return row.trial, stored, replayed, same

    # --- artifacts -------------------------------------------------------------------
    async def upload_artifact(
        self, owner: str, digest: str, size: int, name: str, chunks: AsyncIterable[bytes]
    ) -> ArtifactInfo:
        """Stores ``owner``'s upload (checked against digest, size limit and quota)."""
        return await self.artifacts.upload(owner, digest, size, name, chunks)

    async def stat_artifact(self, owner: str, digest: str) -> ArtifactInfo:
        """``owner``'s artifact (NotFoundError when absent or another tenant's)."""
        return await self.artifacts.stat(owner, digest)

    # --- running ---------------------------------------------------------------------
    def _launch(self, campaign_id: str) -> None:
        run = CampaignRun()
        self._runs[campaign_id] = run
        run.task = asyncio.get_running_loop().create_task(
            self._supervise(campaign_id, run), name=f"campaign-{campaign_id}"
        )
        # A finished campaign keeps nothing in memory.
        run.task.add_done_callback(lambda _: self._forget(campaign_id, run))

    async def _supervise(self, campaign_id: str, run: CampaignRun) -> None:
        """Runs the campaign's runner; relaunches it while the campaign is still active."""
        for attempt in range(RELAUNCHES + 1):
            runner = CampaignRunner(self.lifecycle, self.scheduler, self.caches, campaign_id, run)
            try:
                await runner.run()
            except Exception:  # a runner bug: its campaign is checked below like any other end
                log.exception("runner of campaign %s died", campaign_id)
            if run.cancelled or self.lease.lost:
                return
            record = await runner.record_now()
            if record is None or record.state.is_terminal():
                return
            log.warning("campaign %s still %s after its runner ended; relaunching (%d/%d)",
                        campaign_id, record.state.value, attempt + 1, RELAUNCHES)
        await CampaignRunner(
            self.lifecycle, self.scheduler, self.caches, campaign_id, run
        ).end_failed("the campaign's runner kept ending before the campaign did")

    def _forget(self, campaign_id: str, run: CampaignRun) -> None:
        if self._runs.get(campaign_id) is run:
            del self._runs[campaign_id]
