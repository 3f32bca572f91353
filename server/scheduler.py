"""The scheduler: Ray calls, shard sizing, backpressure, retries, completion order.

:class:`ShardScheduler` is the only part of the server that talks to Ray. It runs a
campaign's ``prepare`` once (the context stays in Ray's object store and travels to each node
once), groups queued trials into shards sized to ``execution.shard_seconds`` from the measured
per-trial cost (:class:`ShardSizer`), keeps at most ``max_inflight`` shards in flight, consumes
them in completion order and retries a shard whose task failed (a system failure: worker
crash, engine error, lost object) up to ``execution.max_attempts``. What happens to a shard's
outcome is the caller's business, through the narrow :class:`ShardRecorder` interface. Its
queue is a :class:`TrialSource` that hands out trials as shards are cut, so the scheduler holds
only the shards in flight (and those waiting for a retry), never a round's queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faultlab.errors import SpecError
from faultlab.server.config import CoordinatorConfig
from faultlab.server.edge import user_error
from faultlab.spec import CampaignSpec
from faultlab.workers import tasks

TrialPair = tuple[str, dict[str, Any]]
"""``(content key, trial)``."""
ArtifactRefs = dict[str, Any]
"""``{sha256 digest: ObjectRef of its bytes}``: a campaign's artifacts in Ray's object store."""


def _ray() -> Any:
    import ray

    return ray


RESOURCES_TTL_S = 1.0
_resources: tuple[float, dict[str, float]] = (-math.inf, {})


def cluster_resources() -> dict[str, float]:
    """Ray's cluster resources, read at most once a second: each read is a blocking call to
    Ray's GCS (about 14 ms here, on the event loop), and shards are planned far more often
    than nodes come and go."""
    global _resources
    now = time.monotonic()
    if now - _resources[0] > RESOURCES_TTL_S:
        _resources = (now, dict(_ray().cluster_resources()))
    return _resources[1]


@dataclass
class CampaignRun:
    """The live part of one running campaign: its asyncio task and its Ray refs in flight."""

    task: asyncio.Task[None] | None = None
    inflight: set[Any] = field(default_factory=set)
    cancelled: bool = False
    progress: tuple[Any, str] | None = None
    """``(sink actor, campaign id)`` of live records (:mod:`faultlab.server.progress`)."""


@dataclass
class _Shard:
    keys: list[str]
    trials: list[dict[str, Any]]
    attempts: int = 0


class TrialSource(Protocol):
    """Where a round's trials to compute come from, in plan order (the runner's packed round,
    unpacked a chunk at a time: the scheduler never needs the whole queue)."""

    def remaining(self) -> int:
        """Trials not yet taken: exact once every chunk is unpacked, an upper bound before."""
        ...

    async def take(self, count: int) -> list[TrialPair]:
        """Up to ``count`` trials, the next in plan order (``[]``: none left)."""
        ...


class ShardRecorder(Protocol):
    """What the scheduler reports about shards (the campaign runner records it)."""

    async def started(self, keys: Sequence[str]) -> None: ...

    async def finished(self, keys: Sequence[str], results: list[dict[str, Any]]) -> None: ...

    async def retrying(self, trials: int, attempt: int, max_attempts: int, reason: str) -> None: ...

    async def failed(self, keys: Sequence[str], reason: str) -> None: ...


class ShardSizer:
    """Shard sizes that follow the measured per-trial cost.

    The cost is seconds ÷ trials over the shards seen so far, each shard's seconds and trials
    weighted by ``DECAY`` per later shard: a shard counts by its trials, so a worker's first
    shard (a handful of trials that also paid its one-off setup: the context's fetch, golden
    activations, the batched path's calibration) stops mattering once one large shard is in,
    and a change of cost (a later round on dearer layers) shows within a shard or two.
    """

    DECAY = 0.5

    def __init__(self, initial_trials: int) -> None:
        self.initial_trials = initial_trials
        self._seconds = 0.0
        self._trials = 0.0

    @property
    def per_trial_seconds(self) -> float | None:
        return self._seconds / self._trials if self._trials else None

    def observe(self, seconds: float, trials: int) -> None:
        self._seconds = self.DECAY * self._seconds + max(seconds, 0.0)
        self._trials = self.DECAY * self._trials + max(trials, 1)

    def size(self, shard_seconds: float) -> int:
        per_trial = self.per_trial_seconds
        if per_trial is None:
            return self.initial_trials
        target = shard_seconds / max(per_trial, 1e-6)
        return int(min(max(1, math.floor(target)), 100_000))


def _reason(exc: BaseException) -> str:
    return user_error(exc)


class ShardScheduler:
    """Runs campaigns' Ray tasks for one coordinator process."""

    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        self._remote: dict[str, Any] = {}

    def start_ray(self) -> None:
        global _resources
        ray = _ray()
        if not ray.is_initialized():
            _resources = (-math.inf, {})  # a new Ray session: its resources are read afresh
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "ignore_reinit_error": True,
                "logging_level": logging.WARNING,
                "log_to_driver": False,
            }
            if self.config.ray_address:
                kwargs["address"] = self.config.ray_address
            else:
                # A coordinator without --ray-address owns a fresh local Ray: it must never
                # join whatever cluster another process on this machine happens to run.
                kwargs["address"] = "local"
                if self.config.num_cpus:
                    kwargs["num_cpus"] = self.config.num_cpus
            ray.init(**kwargs)
        self._remote = {
            "prepare": ray.remote(tasks.prepare_campaign),
            "run_shard": ray.remote(tasks.run_shard),
            "replay": ray.remote(tasks.replay_trial),
        }

    def _remotes(self) -> dict[str, Any]:
        if not self._remote:
            self.start_ray()
        return self._remote

    # --- resources -------------------------------------------------------------------
    @staticmethod
    def cluster_cpus() -> int:
        return int(cluster_resources().get("CPU", 1))

    def task_options(self, spec: CampaignSpec) -> dict[str, Any]:
        """Ray options of the campaign's tasks (``num_gpus: auto`` asks for a GPU if any)."""
        gpus = spec.execution.num_gpus
        available = float(cluster_resources().get("GPU", 0))
        if gpus == "auto":
            gpus = 1.0 if available > 0 else 0.0
        elif gpus > available:  # Ray would queue the tasks forever: fail now, and say why
            raise SpecError("execution.num_gpus", f"the campaign asks for {gpus:g} GPU(s) per "
                            f"task; the cluster has {available:g} (use auto or 0)", ["auto", "0"])
        return {"num_cpus": spec.execution.num_cpus, "num_gpus": float(gpus), "max_retries": 0}

    def max_inflight(self, spec: CampaignSpec) -> int:
        return spec.execution.max_inflight or max(2, 2 * self.cluster_cpus())

    # --- tasks -----------------------------------------------------------------------
    async def put_artifacts(self, blobs: dict[str, bytes]) -> ArtifactRefs:
        """Puts a campaign's artifacts into Ray's object store, once per campaign: a node's
        worker fetches each one once (then keeps it in its on-disk cache)."""
        self._remotes()
        ray = _ray()
        return {d: await asyncio.to_thread(ray.put, blob) for d, blob in blobs.items()}

    async def prepare(
        self,
        spec: CampaignSpec,
        options: dict[str, Any],
        run: CampaignRun,
        artifacts: ArtifactRefs,
    ) -> tuple[list[Any], dict[str, Any]]:
        """Runs the engine's ``prepare`` as a Ray task: (context box for shards, metadata)."""
        # Ray may re-run prepare (deterministic) to rebuild a context lost with its node; shard
        # attempts are still counted here only.
        retries = {**options, "max_retries": spec.execution.max_attempts}
        context_ref, meta_ref = self._remotes()["prepare"].options(
            num_returns=2, **retries
        ).remote(spec.to_json(), artifacts)
        run.inflight.add(meta_ref)
        try:
            meta: dict[str, Any] = await meta_ref
        finally:
            run.inflight.discard(meta_ref)
        # A list, so Ray passes the ref itself and each worker resolves (and keeps) it once.
        return [context_ref], meta

    async def replay(
        self, spec_json: str, trial: dict[str, Any], artifacts: ArtifactRefs
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._remotes()["replay"].remote(
            spec_json, trial, artifacts
        )
        return result

    @staticmethod
    def cancel(run: CampaignRun) -> None:
        """Lets go of the run's Ray tasks still in flight; they are not cancelled in Ray.

        ``ray.cancel`` of a task whose reply is arriving aborts the whole driver process
        inside Ray's core worker ("Tried to complete task that was not pending",
        ray-project/ray#54846), with ``force=True`` and with ``force=False`` alike: seen in
        clean-clone CI runs of the cancel-race test even when only tasks ``ray.wait`` had
        just found unfinished were cancelled. So a cancelled campaign's in-flight shards
        (at most ``max_inflight``, each sized to ``execution.shard_seconds``) run to their
        end and their results are dropped: the campaign is terminal, and the store records
        nothing for it any more. No further shard is submitted (the run is cancelled)."""
        run.inflight.clear()

    async def run_shards(
        self,
        spec: CampaignSpec,
        queue: TrialSource,
        context_box: list[Any],
        run: CampaignRun,
        sizer: ShardSizer,
        recorder: ShardRecorder,
    ) -> None:
        """Runs every queued trial in shards until done, failed for good, or cancelled."""
        options = self.task_options(spec)
        remote = self._remotes()["run_shard"].options(**options)
        max_inflight = self.max_inflight(spec)
        pending: list[_Shard] = []
        inflight: dict[asyncio.Future[Any], tuple[Any, _Shard]] = {}
        while (queue.remaining() or pending or inflight) and not run.cancelled:
            while len(inflight) < max_inflight:
                shard = pending.pop(0) if pending else await self._next_shard(spec, queue, sizer)
                if shard is None:
                    break
                shard.attempts += 1
                await recorder.started(shard.keys)
                channel = (*run.progress, shard.keys) if run.progress else None
                ref = remote.remote(spec.kind, context_box, shard.trials, channel)
                run.inflight.add(ref)
                inflight[asyncio.wrap_future(ref.future())] = (ref, shard)
            if not inflight:
                break
            finished, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            for fut in finished:
                ref, shard = inflight.pop(fut)
                run.inflight.discard(ref)
                await self._consume(spec, fut, shard, run, sizer, recorder, pending)

    async def _consume(
        self,
        spec: CampaignSpec,
        fut: asyncio.Future[Any],
        shard: _Shard,
        run: CampaignRun,
        sizer: ShardSizer,
        recorder: ShardRecorder,
        pending: list[_Shard],
    ) -> None:
        try:
            out = fut.result()
        except Exception as exc:  # system failure: worker crash, engine error, lost object
            if run.cancelled:
                return
            limit = spec.execution.max_attempts
            if shard.attempts < limit:
                await recorder.retrying(len(shard.keys), shard.attempts, limit, _reason(exc))
                pending.append(shard)
            else:
                await recorder.failed(shard.keys, _reason(exc))
            return
        sizer.observe(out["seconds"], len(shard.trials))
        await recorder.finished(shard.keys, out["results"])

    async def _next_shard(
        self, spec: CampaignSpec, queue: TrialSource, sizer: ShardSizer
    ) -> _Shard | None:
        if not queue.remaining():
            return None
        # Never fewer shards than workers while there is enough work to spread.
        cpus = cluster_resources().get("CPU", 1)
        workers = max(1, int(cpus / spec.execution.num_cpus))
        even = max(1, math.ceil(queue.remaining() / workers))
        chunk = await queue.take(min(sizer.size(spec.execution.shard_seconds), even))
        if not chunk:
            return None
        return _Shard([k for k, _ in chunk], [t for _, t in chunk])
