"""One campaign, driven from QUEUED (or RUNNING, after a restart) to a terminal state.

:class:`CampaignRunner` joins the two halves of the coordinator: the lifecycle (guarded
transitions, log lines) and the scheduler (Ray work). Per round it plans (or reuses the
cached first-round plan of an identical zoo campaign), adds the trials to the store, records
trials whose content key already has a result from the cache, and hands the rest to the
scheduler; it records what the scheduler reports as the :class:`ShardRecorder`.

Trials exist as dicts only a chunk and the shards in flight at a time, never a whole round
(:mod:`faultlab.server.plans`): a round is packed as the engine makes it, written to the store
a chunk at a time and unpacked again as the scheduler cuts shards; where the engine knows the
round's size, its first shards run while the rest is still being planned.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faultlab.errors import FaultlabError, SpecError
from faultlab.hashing import canonical_json
from faultlab.server.caches import LruCache, PackedPlan
from faultlab.server.checkpoints import has_blobs, share_result_blobs, store_shard_blobs
from faultlab.server.edge import user_error
from faultlab.server.lifecycle import CampaignLifecycle
from faultlab.server.outage import persist
from faultlab.server.plans import RoundSource, StreamedPlan, pack_plan
from faultlab.server.progress import progress_channel
from faultlab.server.scheduler import CampaignRun, ShardScheduler, ShardSizer, TrialPair
from faultlab.server.store import CampaignRecord, ResultItem, Store
from faultlab.server.store.base import LeaseLostError
from faultlab.server.visibility import cache_hits_visible
from faultlab.spec import CampaignSpec, iter_sources, parse_spec
from faultlab.states import TrialState
from faultlab.workers import get_engine
from faultlab.workers.engine import Engine, TrialRecord

log = logging.getLogger("faultlab.coordinator")


@dataclass(frozen=True)
class PlanCaches:
    """What identical zoo campaigns share: ``prepare``'s metadata and the first-round plan.

    Keyed by :func:`meta_key`; both bounded (least recently used out; plans also by their
    packed bytes)."""

    meta: LruCache[str, dict[str, Any]]
    first_plans: LruCache[str, PackedPlan]


def meta_key(spec: CampaignSpec, version: str) -> str | None:
    """Key under which ``prepare``'s metadata may be reused by an identical campaign.

    Only where the content is a function of the spec: zoo training is deterministic and an
    artifact is named by its digest, but a factory's code may change behind the same spec.
    """
    if any(source.factory for _, source in iter_sources(spec)):
        return None
    return f"{spec.kind}:{version}:{spec.spec_hash}"


class CampaignRunner:
    """Drives one campaign; ``run`` never raises except on task cancellation."""

    def __init__(
        self,
        lifecycle: CampaignLifecycle,
        scheduler: ShardScheduler,
        caches: PlanCaches,
        campaign_id: str,
        run: CampaignRun,
    ) -> None:
        self.lifecycle = lifecycle
        self.store: Store = lifecycle.store
        self.scheduler = scheduler
        self.caches = caches
        self.id = campaign_id
        self.run_state = run
        self.sizer = ShardSizer(scheduler.config.initial_shard_trials)
        self.computed = 0
        self.from_cache = 0
        self.context_box: list[Any] | None = None
        self.resumed = False
        self.owner = ""

    async def _store(self, fn: Any, *args: Any) -> Any:
        """A store call, waiting out outages (:func:`faultlab.server.outage.persist`)."""
        return await persist(self.store, self.id, asyncio.to_thread, fn, *args)

    async def _persist(self, call: Any, *args: Any) -> Any:
        return await persist(self.store, self.id, call, *args)

    async def record_now(self) -> CampaignRecord | None:
        """The campaign as stored now (waits out a store outage)."""
        record: CampaignRecord | None = await self._store(self.store.get_campaign, self.id)
        return record

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            self.scheduler.cancel(self.run_state)
            raise
        except LeaseLostError as exc:  # another coordinator owns the store: it writes on
            log.error("campaign %s stops here: %s", self.id, exc)
        except FaultlabError as exc:
            log.warning("campaign %s failed: %s", self.id, exc)
            await self.end_failed(user_error(exc))
        except Exception as exc:  # an engine bug must end the campaign, not the coordinator
            if not self.run_state.cancelled:
                log.exception("campaign %s failed", self.id)
            await self.end_failed(user_error(exc))

    async def end_failed(self, message: str) -> None:
        """Ends the campaign FAILED, unless it was cancelled: a cancelled ``prepare`` or shard
        raises (TaskCancelledError), and the cancel, not that error, is its end."""
        if self.run_state.cancelled:
            return
        try:
            await self._persist(self.lifecycle.fail, self.id, message)
        except LeaseLostError as exc:
            log.error("campaign %s: %s", self.id, exc)

    async def _run(self) -> None:
        record = await self._persist(self.lifecycle.start, self.id)
        if record is None:
            return
        spec = parse_spec(record.spec_json)
        self.owner = record.owner
        engine = get_engine(spec.kind)
        key = meta_key(spec, engine.version)
        meta = self.caches.meta.get(key) if key else None
        if meta is None:
            meta = await self._prepare(spec, key)
            if self.run_state.cancelled:
                return
        await self._store(self.store.set_meta, self.id, canonical_json(meta))
        self.resumed = record.trials_done > 0
        async with progress_channel(self.store, self.id, self.run_state, engine):
            await self._rounds(spec, engine, meta, key)
        if not self.run_state.cancelled:
            await self._finish(spec)

    async def _rounds(
        self, spec: CampaignSpec, engine: Engine[Any], meta: dict[str, Any], key: str | None
    ) -> None:
        round_index = planned = 0
        last_round = engine.max_rounds(spec)
        while not self.run_state.cancelled:
            if last_round is not None and round_index >= last_round:
                break
            limit = spec.execution.max_trials - planned
            plan = await self._plan(spec, engine, meta, key, round_index, limit)
            if not len(plan):
                break
            planned += len(plan)
            if planned > spec.execution.max_trials:
                raise SpecError(
                    "execution.max_trials",
                    f"the plan has more than {spec.execution.max_trials} trials; raise the limit "
                    "or shrink the campaign",
                )
            await self._store_and_run(spec, meta, key, round_index, plan)
            round_index += 1

    async def _store_and_run(self, spec: CampaignSpec, meta: dict[str, Any], key: str | None,
                             round_index: int, plan: PackedPlan | StreamedPlan) -> None:
        """Adds the round's trials to the store (idempotent per chunk: recovery re-adds the
        rest) and runs it; a streamed round is stored as it is packed, while it runs."""
        add = functools.partial(self._store, self.store.add_trials, self.id, round_index)
        if isinstance(plan, PackedPlan):
            for pairs in plan.chunks():
                await add(pairs)
            await self._run_round(spec, meta, plan)
            return
        storing = asyncio.ensure_future(plan.store_all(add))
        try:
            await self._run_round(spec, meta, plan)
            if self.run_state.cancelled:
                plan.stop.set()
            await storing
        finally:
            plan.stop.set()
            storing.cancel()
        if key and round_index == 0 and plan.complete:
            self.caches.first_plans.put(key, plan.packed)

    async def _plan(
        self,
        spec: CampaignSpec,
        engine: Engine[Any],
        meta: dict[str, Any],
        key: str | None,
        round_index: int,
        limit: int,
    ) -> PackedPlan | StreamedPlan:
        """The round's packed ``(key, trial)`` pairs; an identical resubmission is planned
        (deterministically) to the same first round, so that one is reused, not replanned."""
        first = bool(key) and round_index == 0
        if first and key and (cached := self.caches.first_plans.get(key)) is not None:
            return cached
        previous = await self._previous_records(round_index)
        size = await asyncio.to_thread(engine.round_size, spec, meta, round_index, previous)
        if size is not None:  # packed by a thread while its first shards run
            streamed = StreamedPlan(size)
            if 0 < size <= limit:  # else refused by the caller before anything is stored
                trials = engine.iter_plan(spec, meta, round_index, previous)
                streamed.start(engine, spec, meta, trials)
            return streamed
        plan = await asyncio.to_thread(pack_plan, engine, spec, meta, round_index, previous,
                                       limit)
        if first and key and len(plan) <= limit:
            self.caches.first_plans.put(key, plan)
        return plan

    async def _finish(self, spec: CampaignSpec) -> None:
        final: CampaignRecord | None = await self._store(self.store.get_campaign, self.id)
        failed = (
            await self._store(self.store.trials, self.id, [TrialState.FAILED])
            if final is not None and final.trials_failed
            else []
        )
        await self._persist(
            self.lifecycle.log, self.id,
            f"computed {self.computed} trials, {self.from_cache} from cache",
        )
        if failed:
            raise FaultlabError(
                f"{len(failed)} trials failed after {spec.execution.max_attempts} attempts: "
                f"{failed[0].error}"
            )
        await self._persist(
            self.lifecycle.succeed, self.id,
            f"{self.computed} computed, {self.from_cache} from cache",
        )

    async def _prepare_task(self, spec: CampaignSpec) -> tuple[list[Any], dict[str, Any]]:
        """The ``prepare`` Ray task, handed the campaign's artifacts (put once, by ref)."""
        blobs = await self._persist(self.lifecycle.artifacts, self.owner, spec)
        artifacts = await self.scheduler.put_artifacts(blobs)
        options = self.scheduler.task_options(spec)
        return await self.scheduler.prepare(spec, options, self.run_state, artifacts)

    async def _prepare(self, spec: CampaignSpec, key: str | None) -> dict[str, Any]:
        self.context_box, meta = await self._prepare_task(spec)
        if key:
            self.caches.meta.put(key, meta)
        return meta

    async def _previous_records(self, round_index: int) -> list[TrialRecord]:
        if round_index == 0:
            return []
        rows = await self._store(self.store.campaign_results, self.id)
        return [
            TrialRecord(row.key, row.trial, result, row.attempts)
            for row, result in rows
            if row.round < round_index
        ]

    async def _run_round(self, spec: CampaignSpec, meta: dict[str, Any],
                         plan: PackedPlan | StreamedPlan) -> None:
        done: set[str] = set()
        if self.resumed:  # only a resumed campaign can already hold DONE trials of this round
            done = await self._store(self.store.done_keys, self.id)
        source = RoundSource(plan, done, self._from_cache)
        if not await source.ready():
            return
        context_box = self.context_box or await self._late_context(spec, meta)
        await self.scheduler.run_shards(spec, source, context_box, self.run_state, self.sizer,
                                        self)

    async def _from_cache(self, todo: list[TrialPair]) -> list[TrialPair]:
        """Records the trials of ``todo`` whose content key has a result; returns the rest."""
        cached = await self._store(self.store.lookup_results, [k for k, _ in todo])
        if cached:  # another tenant's hits count as computed (server/visibility.py)
            visible = await self._store(cache_hits_visible, self.store, self.id)
            await self._store(share_result_blobs, self.store, self.lifecycle.config,
                              self.owner, self.id, list(cached.values()))  # checkpoints
            recorded = await self._store(
                self.store.record_results, self.id,
                [ResultItem(k, r, cached=visible) for k, r in cached.items()],
            )
            self.from_cache += recorded if visible else 0
            self.computed += 0 if visible else recorded
        return [(k, t) for k, t in todo if k not in cached]

    async def _late_context(self, spec: CampaignSpec, meta: dict[str, Any]) -> list[Any]:
        """The plan came from reused metadata: prepare only now, and check it is the same."""
        self.context_box, fresh = await self._prepare_task(spec)
        if (fresh["model_digest"], fresh["dataset_digest"]) != (
            meta["model_digest"], meta["dataset_digest"]
        ):
            raise FaultlabError("the model or dataset changed while the campaign was planned")
        return self.context_box

    # --- ShardRecorder ---------------------------------------------------------------
    async def started(self, keys: Sequence[str]) -> None:
        await self._store(self.store.mark_running, self.id, keys)

    async def finished(self, keys: Sequence[str], results: list[dict[str, Any]]) -> None:
        if has_blobs(results):  # checkpoints become the tenant's artifacts: one hop a shard
            results = await self._store(store_shard_blobs, self.store, self.lifecycle.config,
                                        self.owner, self.id, results)
        items = [ResultItem(k, r) for k, r in zip(keys, results, strict=True)]
        self.computed += await self._store(self.store.record_results, self.id, items)

    async def retrying(self, trials: int, attempt: int, max_attempts: int, reason: str) -> None:
        await self._persist(
            self.lifecycle.log, self.id,
            f"shard of {trials} trials failed (attempt {attempt}/{max_attempts}), "
            f"retrying: {reason}",
            "warning",
        )

    async def failed(self, keys: Sequence[str], reason: str) -> None:
        await self._store(self.store.mark_failed, self.id, keys, reason)
