"""The coordinator: validates campaigns, plans trials, schedules shards on Ray, records results.

One :class:`Coordinator` per server process. It owns no global mutable state beyond its own
fields; every campaign runs as one asyncio task (:class:`CampaignRunner`) that

1. moves the campaign QUEUED → RUNNING (compare-and-set),
2. runs the engine's ``prepare`` as a Ray task (the context stays in Ray's object store),
3. plans round after round; each round's trials are added to the store, trials whose content
   key already has a result are recorded from the cache, the rest are grouped into shards
   sized to ``execution.shard_seconds`` (measured, adaptive) and dispatched with at most
   ``max_inflight`` shards in flight, consumed in completion order,
4. retries shards whose task failed (system failures) up to ``execution.max_attempts``,
5. ends SUCCEEDED, FAILED or CANCELLED.

After a restart :meth:`Coordinator.recover` resumes every non-terminal campaign before the
server accepts requests: RUNNING trials go back to PENDING, the plan is replayed (it is
deterministic), DONE trials are skipped, and only missing trials are computed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faultlab.errors import (
    FailedPreconditionError,
    FaultlabError,
    NotFoundError,
    ResourceExhaustedError,
    SpecError,
)
from faultlab.hashing import canonical_json
from faultlab.report import Report
from faultlab.workers import tasks
from faultlab.server.store import CampaignRecord, ResultItem, Store
from faultlab.spec import CampaignSpec, load_spec_source, parse_spec
from faultlab.states import ACTIVE_STATES, CampaignState, TrialState
from faultlab.version import code_version
from faultlab.workers import get_engine
from faultlab.workers.engine import TrialRecord
from faultlab.workers.local import keyed

log = logging.getLogger("faultlab.coordinator")


@dataclass(frozen=True)
class CoordinatorConfig:
    """Settings of one coordinator process."""

    ray_address: str | None = None
    """``auto`` or ``ray://…`` to join a cluster; None starts/uses a local Ray."""
    num_cpus: int | None = None
    """CPUs of a local Ray instance (None: all)."""
    max_active_per_tenant: int = 32
    """Non-terminal campaigns a tenant may have at once (RESOURCE_EXHAUSTED beyond)."""
    max_trials: int = 10_000_000
    """Largest ``execution.max_trials`` a campaign may ask for."""
    initial_shard_trials: int = 4
    """Trials in the first shards, before the per-trial cost has been measured."""


@dataclass
class _Shard:
    keys: list[str]
    trials: list[dict[str, Any]]
    attempts: int = 0


@dataclass
class _RunState:
    task: asyncio.Task[None] | None = None
    inflight: set[Any] = field(default_factory=set)
    cancelled: bool = False


def _ray() -> Any:
    import ray

    return ray


class Coordinator:
    """Campaign lifecycle on top of a :class:`Store` and a Ray cluster."""

    def __init__(self, store: Store, config: CoordinatorConfig | None = None) -> None:
        self.store = store
        self.config = config or CoordinatorConfig()
        self._runs: dict[str, _RunState] = {}
        self._remote: dict[str, Any] = {}
        self._report_cache: dict[tuple[str, int, str], Report] = {}
        self._meta_cache: dict[str, dict[str, Any]] = {}
        self._plan_cache: collections.OrderedDict[
            tuple[str, int], list[tuple[str, dict[str, Any]]]
        ] = collections.OrderedDict()
        self._started = False

    # --- lifecycle -----------------------------------------------------------------------
    def start_ray(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "ignore_reinit_error": True,
                "logging_level": logging.WARNING,
                "log_to_driver": False,
            }
            if self.config.ray_address:
                kwargs["address"] = self.config.ray_address
            elif self.config.num_cpus:
                kwargs["num_cpus"] = self.config.num_cpus
            ray.init(**kwargs)
        self._remote = {
            "prepare": ray.remote(tasks.prepare_campaign),
            "run_shard": ray.remote(tasks.run_shard),
            "replay": ray.remote(tasks.replay_trial),
        }

    async def recover(self) -> list[str]:
        """Resumes every non-terminal campaign in the store (call before serving)."""
        if not self._remote:
            self.start_ray()
        active = await asyncio.to_thread(self.store.active_campaigns)
        for record in active:
            reset = await asyncio.to_thread(self.store.reset_running, record.id)
            await asyncio.to_thread(
                self.store.append_event,
                record.id,
                {"type": "log", "level": "info",
                 "message": f"coordinator restarted: resuming ({reset} running trials reset)"},
            )
            self._launch(record.id)
        self._started = True
        return [r.id for r in active]

    async def shutdown(self) -> None:
        for run in list(self._runs.values()):
            if run.task and not run.task.done():
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.task

    # --- requests ------------------------------------------------------------------------
    async def submit(self, owner: str, spec_text: str, request_id: str = "") -> CampaignRecord:
        """Validates (light, then deep) and enqueues a campaign; no Ray work on bad input.

        A repeated ``request_id`` returns the first campaign: the store's ``create_campaign``
        is idempotent on (owner, request id).
        """
        spec = parse_spec(load_spec_source(spec_text))
        if spec.execution.max_trials > self.config.max_trials:
            raise ResourceExhaustedError(
                f"execution.max_trials: {spec.execution.max_trials} exceeds this coordinator's "
                f"limit of {self.config.max_trials}"
            )
        await asyncio.to_thread(get_engine(spec.kind).validate, spec)
        active = await asyncio.to_thread(self.store.active_campaigns)
        if sum(1 for c in active if c.owner == owner) >= self.config.max_active_per_tenant:
            raise ResourceExhaustedError(
                f"tenant {owner!r} already has {self.config.max_active_per_tenant} active "
                "campaigns; wait for one to finish or cancel one"
            )
        now = time.time()
        record = CampaignRecord(
            id=uuid.uuid4().hex[:16],
            owner=owner,
            kind=spec.kind,
            name=spec.name or spec.kind,
            spec_json=spec.to_json(),
            spec_hash=spec.spec_hash,
            seed=spec.seed,
            code_version=code_version(),
            request_id=request_id,
            created_at=now,
            updated_at=now,
        )
        stored, created = await asyncio.to_thread(self.store.create_campaign, record)
        if created:
            self._launch(stored.id)
        return stored

    async def get(self, owner: str | None, campaign_id: str) -> CampaignRecord:
        record = await asyncio.to_thread(self.store.get_campaign, campaign_id)
        if record is None or (owner is not None and record.owner != owner):
            raise NotFoundError(f"campaign {campaign_id!r} not found")
        return record

    async def list_campaigns(
        self, owner: str | None, limit: int, offset: int
    ) -> list[CampaignRecord]:
        return await asyncio.to_thread(self.store.list_campaigns, owner, limit, offset)

    async def cancel(self, owner: str | None, campaign_id: str) -> CampaignRecord:
        record = await self.get(owner, campaign_id)
        if record.state.is_terminal():
            return record
        run = self._runs.get(campaign_id)
        if run is not None:
            run.cancelled = True
            self._cancel_tasks(run)
        await asyncio.to_thread(
            self.store.transition, campaign_id, ACTIVE_STATES, CampaignState.CANCELLED,
            message="cancelled by request",
        )
        return await self.get(owner, campaign_id)

    def _cancel_tasks(self, run: _RunState) -> None:
        ray = _ray()
        for ref in list(run.inflight):
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def _remember_plan(
        self, key: tuple[str, int], pairs: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Keeps the first-round plans of the last few zoo campaigns: an identical resubmission
        is planned (deterministically) to the same trials, so it need not plan again."""
        self._plan_cache[key] = pairs
        while len(self._plan_cache) > 8:
            self._plan_cache.popitem(last=False)

    async def report(self, owner: str | None, campaign_id: str) -> Report:
        record = await self.get(owner, campaign_id)
        if not record.meta_json:
            raise FailedPreconditionError(
                f"campaign {campaign_id!r} has no results yet (state {record.state.value})"
            )
        cache_key = (campaign_id, record.trials_done, record.state.value)
        if cache_key in self._report_cache:
            return self._report_cache[cache_key]
        report = await asyncio.to_thread(self._aggregate, record)
        self._report_cache[cache_key] = report
        return report

    def _aggregate(self, record: CampaignRecord) -> Report:
        import json

        spec = parse_spec(record.spec_json)
        meta = json.loads(record.meta_json)
        rows = self.store.campaign_results(record.id)
        records = [TrialRecord(row.key, row.trial, result, row.attempts) for row, result in rows]
        report = get_engine(spec.kind).aggregate(spec, meta, records)
        report.provenance = {
            **report.provenance,
            "campaign_id": record.id,
            "spec_hash": record.spec_hash,
            "code_version": record.code_version,
            "seed": record.seed,
            "state": record.state.value,
            "trials_done": record.trials_done,
            "trials_total": record.trials_total,
        }
        return report

    async def replay(
        self, owner: str | None, campaign_id: str, trial_key: str
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], bool]:
        record = await self.get(owner, campaign_id)
        rows = await asyncio.to_thread(self.store.trials, campaign_id, [TrialState.DONE])
        row = next((r for r in rows if r.key == trial_key), None)
        if row is None:
            raise NotFoundError(f"trial {trial_key!r} is not a finished trial of {campaign_id!r}")
        stored = (await asyncio.to_thread(self.store.lookup_results, [trial_key]))[trial_key]
        if not self._remote:
            self.start_ray()
        replayed = await self._remote["replay"].remote(record.spec_json, row.trial)
        same = get_engine(record.kind).outcomes_equal(stored, replayed)
        return row.trial, stored, replayed, same

    # --- running -------------------------------------------------------------------------
    def _launch(self, campaign_id: str) -> None:
        run = _RunState()
        self._runs[campaign_id] = run
        run.task = asyncio.get_running_loop().create_task(
            CampaignRunner(self, campaign_id, run).run(), name=f"campaign-{campaign_id}"
        )

    async def wait_idle(self) -> None:
        """Waits until every running campaign task has finished (tests, shutdown)."""
        tasks_ = [r.task for r in self._runs.values() if r.task is not None]
        if tasks_:
            await asyncio.gather(*tasks_, return_exceptions=True)


class CampaignRunner:
    """Drives one campaign from QUEUED (or RUNNING, after a restart) to a terminal state."""

    def __init__(self, coordinator: Coordinator, campaign_id: str, run: _RunState) -> None:
        self.co = coordinator
        self.store = coordinator.store
        self.id = campaign_id
        self.run_state = run
        self.computed = 0
        self.from_cache = 0
        self.per_trial_seconds: float | None = None
        self.context_box: list[Any] | None = None
        self.resumed = False

    async def _store(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            self.co._cancel_tasks(self.run_state)
            raise
        except FaultlabError as exc:
            await self._fail(exc.message)
        except Exception as exc:  # an engine bug must end the campaign, not the coordinator
            log.exception("campaign %s failed", self.id)
            await self._fail(f"{type(exc).__name__}: {exc}")

    async def _fail(self, message: str) -> None:
        with contextlib.suppress(Exception):
            await self._store(
                self.store.transition, self.id, ACTIVE_STATES, CampaignState.FAILED,
                error=message, message=message,
            )

    async def _run(self) -> None:
        record = await self._store(self.store.get_campaign, self.id)
        if record is None or record.state.is_terminal():
            return
        if record.state is CampaignState.QUEUED:
            if not await self._store(
                self.store.transition, self.id, [CampaignState.QUEUED], CampaignState.RUNNING
            ):
                return
        spec = parse_spec(record.spec_json)
        engine = get_engine(spec.kind)
        ray = _ray()
        gpus = self._num_gpus(spec)
        options = {"num_cpus": spec.execution.num_cpus, "num_gpus": gpus, "max_retries": 0}
        meta_key = self._meta_key(spec, engine.version)
        meta = self.co._meta_cache.get(meta_key) if meta_key else None
        if meta is None:
            meta = await self._prepare(spec, meta_key, options)
            if self.run_state.cancelled:
                return
        await self._store(self.store.set_meta, self.id, canonical_json(meta))
        max_inflight = spec.execution.max_inflight or max(
            2, 2 * int(ray.cluster_resources().get("CPU", 1))
        )

        round_index = 0
        planned = 0
        self.resumed = record.trials_done > 0
        last_round = engine.max_rounds(spec)
        while not self.run_state.cancelled:
            if last_round is not None and round_index >= last_round:
                break
            previous = await self._previous_records(round_index)
            cached_plan = (
                self.co._plan_cache.get((meta_key, 0)) if meta_key and round_index == 0 else None
            )
            if cached_plan is not None:
                pairs = cached_plan
            else:
                trials = await asyncio.to_thread(engine.plan, spec, meta, round_index, previous)
                pairs = await asyncio.to_thread(keyed, spec.kind, engine.version, meta, trials)
                if meta_key and round_index == 0:
                    self.co._remember_plan((meta_key, 0), pairs)
            if not pairs:
                break
            planned += len(pairs)
            if planned > spec.execution.max_trials:
                raise SpecError(
                    "execution.max_trials",
                    f"the plan has more than {spec.execution.max_trials} trials; raise the limit "
                    "or shrink the campaign",
                )
            await self._store(self.store.add_trials, self.id, round_index, pairs)
            await self._run_round(spec, meta, pairs, options, max_inflight)
            round_index += 1

        if self.run_state.cancelled:
            return
        final = await self._store(self.store.get_campaign, self.id)
        failed = (
            await self._store(self.store.trials, self.id, [TrialState.FAILED])
            if final is not None and final.trials_failed
            else []
        )
        await self._store(
            self.store.append_event, self.id,
            {"type": "log", "level": "info",
             "message": f"computed {self.computed} trials, {self.from_cache} from cache"},
        )
        if failed:
            raise FaultlabError(
                f"{len(failed)} trials failed after {spec.execution.max_attempts} attempts: "
                f"{failed[0].error}"
            )
        await self._store(
            self.store.transition, self.id, [CampaignState.RUNNING], CampaignState.SUCCEEDED,
            message=f"{self.computed} computed, {self.from_cache} from cache",
        )

    def _meta_key(self, spec: CampaignSpec, version: str) -> str | None:
        """Key under which ``prepare``'s metadata may be reused by an identical campaign.

        Only for zoo models and datasets, whose content is a function of the spec (training is
        deterministic); a user's factory or weights file may change behind the same spec.
        """
        if spec.model.factory or spec.model.weights or spec.dataset.factory:
            return None
        return f"{spec.kind}:{version}:{spec.spec_hash}"

    async def _prepare(
        self, spec: CampaignSpec, meta_key: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        """Runs the engine's ``prepare`` as a Ray task; keeps the context ref for shards."""
        context_ref, meta_ref = self.co._remote["prepare"].options(
            num_returns=2, **options
        ).remote(spec.to_json())
        self.run_state.inflight.add(meta_ref)
        try:
            meta: dict[str, Any] = await meta_ref
        finally:
            self.run_state.inflight.discard(meta_ref)
        self.context_box = [context_ref]
        if meta_key:
            self.co._meta_cache[meta_key] = meta
        return meta

    def _num_gpus(self, spec: CampaignSpec) -> float:
        requested = spec.execution.num_gpus
        if requested == "auto":
            return 1.0 if _ray().cluster_resources().get("GPU", 0) > 0 else 0.0
        return float(requested)

    async def _previous_records(self, round_index: int) -> list[TrialRecord]:
        if round_index == 0:
            return []
        rows = await self._store(self.store.campaign_results, self.id)
        return [
            TrialRecord(row.key, row.trial, result, row.attempts)
            for row, result in rows
            if row.round < round_index
        ]

    async def _run_round(
        self,
        spec: CampaignSpec,
        meta: dict[str, Any],
        pairs: Sequence[tuple[str, dict[str, Any]]],
        options: dict[str, Any],
        max_inflight: int,
    ) -> None:
        done: set[str] = set()
        if self.resumed:  # only a resumed campaign can already hold DONE trials of this round
            done_rows = await self._store(self.store.trials, self.id, [TrialState.DONE])
            done = {r.key for r in done_rows}
        todo = [(k, t) for k, t in pairs if k not in done]
        cached = await self._store(self.store.lookup_results, [k for k, _ in todo])
        if cached:
            self.from_cache += await self._store(
                self.store.record_results, self.id,
                [ResultItem(k, r, cached=True) for k, r in cached.items()],
            )
        queue = [(k, t) for k, t in todo if k not in cached]
        if not queue:
            return
        if self.context_box is None:  # the plan came from reused metadata: prepare only now
            fresh = await self._prepare(spec, None, options)
            if (fresh["model_digest"], fresh["dataset_digest"]) != (
                meta["model_digest"], meta["dataset_digest"]
            ):
                raise FaultlabError("the model or dataset changed while the campaign was planned")
        context_box = self.context_box
        pending: list[_Shard] = []
        inflight: dict[asyncio.Future[Any], tuple[Any, _Shard]] = {}
        remote = self.co._remote["run_shard"].options(**options)

        def next_shard() -> _Shard | None:
            if pending:
                return pending.pop(0)
            if not queue:
                return None
            # Never fewer shards than workers while there is enough work to spread.
            workers = max(1, int(_ray().cluster_resources().get("CPU", 1) / spec.execution.num_cpus))
            size = min(self._shard_size(spec), max(1, math.ceil(len(queue) / workers)))
            chunk = queue[:size]
            del queue[:size]
            return _Shard([k for k, _ in chunk], [t for _, t in chunk])

        while (queue or pending or inflight) and not self.run_state.cancelled:
            while len(inflight) < max_inflight:
                shard = next_shard()
                if shard is None:
                    break
                shard.attempts += 1
                await self._store(self.store.mark_running, self.id, shard.keys)
                ref = remote.remote(spec.kind, context_box, shard.trials)
                self.run_state.inflight.add(ref)
                inflight[asyncio.wrap_future(ref.future())] = (ref, shard)
            if not inflight:
                break
            finished, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for fut in finished:
                ref, shard = inflight.pop(fut)
                self.run_state.inflight.discard(ref)
                try:
                    out = fut.result()
                except Exception as exc:  # system failure: worker crash, engine error, lost object
                    if self.run_state.cancelled:
                        continue
                    await self._retry_or_fail(spec, shard, exc, pending)
                    continue
                self._observe(out["seconds"], len(shard.trials))
                items = [ResultItem(k, r) for k, r in zip(shard.keys, out["results"], strict=True)]
                self.computed += await self._store(self.store.record_results, self.id, items)

    async def _retry_or_fail(
        self, spec: CampaignSpec, shard: _Shard, exc: BaseException, pending: list[_Shard]
    ) -> None:
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        if shard.attempts < spec.execution.max_attempts:
            await self._store(
                self.store.append_event, self.id,
                {"type": "log", "level": "warning",
                 "message": f"shard of {len(shard.keys)} trials failed (attempt "
                            f"{shard.attempts}/{spec.execution.max_attempts}), retrying: {reason}"},
            )
            pending.append(shard)
        else:
            await self._store(self.store.mark_failed, self.id, shard.keys, reason)

    def _observe(self, seconds: float, n: int) -> None:
        per_trial = seconds / max(n, 1)
        if self.per_trial_seconds is None:
            self.per_trial_seconds = per_trial
        else:  # exponential moving average: shard sizes follow the measured cost
            self.per_trial_seconds = 0.7 * self.per_trial_seconds + 0.3 * per_trial

    def _shard_size(self, spec: CampaignSpec) -> int:
        if self.per_trial_seconds is None:
            return self.co.config.initial_shard_trials
        target = spec.execution.shard_seconds / max(self.per_trial_seconds, 1e-6)
        return int(min(max(1, math.floor(target)), 100_000))
