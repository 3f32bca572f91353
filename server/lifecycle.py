"""The campaign lifecycle: submission and limits, guarded transitions, recovery, reads.

:class:`CampaignLifecycle` is everything about a campaign that is not Ray work. Every state
write is a compare-and-set in the store (a terminal state is never left); tenants see only
their own campaigns (another tenant's answers NOT_FOUND); reports are cached per
``(campaign, trials done, state)`` in a bounded LRU map.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from faultlab.errors import (
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from faultlab.events import LogEvent, StoredEvent
from faultlab.report import Report
from faultlab.server.caches import LruCache
from faultlab.server.checkpoints import resolve_model_reference
from faultlab.server.config import CoordinatorConfig
from faultlab.server.store import CampaignRecord, ResultText, Store, TrialRow
from faultlab.spec import CampaignSpec, is_digest, iter_sources, parse_spec, require_uploaded
from faultlab.spec_text import load_spec_text
from faultlab.states import ACTIVE_STATES, CampaignState, TrialState
from faultlab.version import code_version
from faultlab.workers import get_engine
from faultlab.workers.engine import TrialRecord
from faultlab.workers.zoo.options import check_options
from faultlab.workers.zoo.provided import provided_artifacts

REPORT_PAGE = 5000
"""Finished trials a report reads (and its engine reduces) at a time."""


def warm_imports() -> None:
    """Imports what validating a spec needs: every engine, the zoo (whose graph models load
    torch_geometric) and the transforms, so the first submission of a kind does not wait
    seconds for imports (a no-op once imported)."""
    from faultlab.kinds import engine_class, kind_names
    from faultlab.workers.transforms.registry import TRANSFORMS
    from faultlab.workers.zoo.registry import dataset_entries, model_entries

    for kind in kind_names():
        engine_class(kind)
    model_entries()
    dataset_entries()
    TRANSFORMS.names()


def read_spec(spec_text: str) -> CampaignSpec:
    """The spec of a submission, as data: bounded YAML/JSON text (never a path), every
    ``file`` an uploaded artifact's digest. Slow on large text: run it off the event loop."""
    spec = parse_spec(load_spec_text(spec_text))
    require_uploaded(spec)  # the coordinator never opens a path named by a spec
    return spec


def factory_allowed(factory: str, allow: tuple[str, ...]) -> bool:
    """Whether ``module:callable`` is in an allowlist of dotted module prefixes (``*``: any)."""
    module = factory.partition(":")[0]
    return any(a == "*" or module == a or module.startswith(a + ".") for a in allow)


def check_factories(spec: CampaignSpec, allow: tuple[str, ...]) -> None:
    """Refuses every ``factory`` the operator did not allow, before anything imports it."""
    for field, source in iter_sources(spec):
        if source.factory and not factory_allowed(source.factory, allow):
            module = source.factory.partition(":")[0][:60]
            raise PermissionDeniedError(
                f"{field}.factory: this coordinator runs no code from module {module!r}; its "
                "operator may allow it with `faultlab serve --allow-factory MODULE`, or use "
                "an uploaded model (exported, pyg:, torchvision:) instead"
            )


def _validate(spec: CampaignSpec, blobs: dict[str, bytes]) -> None:
    check_options(spec)  # bounds first: a huge option is refused before anything loads
    with provided_artifacts(blobs):
        get_engine(spec.kind).validate(spec)


def spec_artifacts(spec: CampaignSpec) -> list[str]:
    """The distinct artifact digests a spec refers to, in field order."""
    found = (source.file for _, source in iter_sources(spec) if is_digest(source.file))
    return list(dict.fromkeys(d for d in found if d is not None))


def visible(record: CampaignRecord | None, owner: str | None, campaign_id: str) -> CampaignRecord:
    """``record`` if ``owner`` (None: any tenant) may see it; else NOT_FOUND."""
    if record is None or (owner is not None and record.owner != owner):
        raise NotFoundError("campaign", campaign_id)
    return record


class CampaignLifecycle:
    """Campaign records on top of a :class:`Store`; every method is safe on the event loop."""

    def __init__(self, store: Store, config: CoordinatorConfig) -> None:
        self.store = store
        self.config = config
        self.reports: LruCache[tuple[str, int, str], Report] = LruCache(config.cache_entries)
        """Reports by (campaign, trials done, state): a finished campaign's report is final."""
        warm_imports()  # before serving: imports seconds long never hold up a submission

    # --- submission ------------------------------------------------------------------
    async def submit(
        self, owner: str, spec_text: str, request_id: str = ""
    ) -> tuple[CampaignRecord, bool]:
        """Validates (light, then deep), checks the limits and stores a QUEUED campaign.

        Returns the record and whether it is new: a repeated ``request_id`` returns the first
        campaign (the store's ``create_campaign`` is idempotent on (owner, request id)).
        """
        spec = await self.validate(owner, spec_text)
        now = time.time()
        record = CampaignRecord(
            id=uuid.uuid4().hex[:16], owner=owner, kind=spec.kind, name=spec.name or spec.kind,
            spec_json=spec.to_json(), spec_hash=spec.spec_hash, seed=spec.seed,
            code_version=code_version(), request_id=request_id, created_at=now, updated_at=now,
        )
        # The tenant's limit is counted in the same store transaction as the insert.
        return await asyncio.to_thread(
            self.store.create_campaign, record, self.config.max_active_per_tenant
        )

    async def validate(self, owner: str, spec_text: str) -> CampaignSpec:
        """The spec checked as a submission is (light, then deep against ``owner``'s artifacts
        and this coordinator's limits), storing nothing (``faultlab validate --address``)."""
        spec = await asyncio.to_thread(read_spec, spec_text)
        spec = await asyncio.to_thread(resolve_model_reference, self.store, owner, spec)
        check_factories(spec, self.config.allow_factory)
        for digest in spec_artifacts(spec):
            if await asyncio.to_thread(self.store.stat_artifact, owner, digest) is None:
                raise NotFoundError("artifact", digest, "is not an artifact of yours; upload it")
        if spec.execution.max_trials > self.config.max_trials:
            raise ResourceExhaustedError(
                f"execution.max_trials: {spec.execution.max_trials} exceeds this coordinator's "
                f"limit of {self.config.max_trials}"
            )
        blobs = await self.artifacts(owner, spec)
        await asyncio.to_thread(_validate, spec, blobs)
        return spec

    async def artifacts(self, owner: str, spec: CampaignSpec) -> dict[str, bytes]:
        """The bytes of every artifact the spec names, read from ``owner``'s artifacts."""
        return {
            d: await asyncio.to_thread(self.store.read_artifact, owner, d)
            for d in spec_artifacts(spec)
        }

    # --- reads -----------------------------------------------------------------------
    async def get(self, owner: str | None, campaign_id: str) -> CampaignRecord:
        """The campaign, if ``owner`` (None: any tenant) may see it; else NOT_FOUND."""
        return visible(await asyncio.to_thread(self.store.get_campaign, campaign_id), owner,
                       campaign_id)

    async def list_campaigns(
        self, owner: str | None, limit: int, offset: int
    ) -> list[CampaignRecord]:
        return await asyncio.to_thread(self.store.list_campaigns, owner, limit, offset)

    async def results_page(
        self, owner: str | None, campaign_id: str, start_index: int, limit: int
    ) -> tuple[CampaignRecord, list[ResultText]]:
        """Up to ``limit`` finished trials from plan index ``start_index`` on, as stored text."""
        record = await self.get(owner, campaign_id)
        rows = await asyncio.to_thread(self.store.result_texts, record.id, start_index, limit)
        return record, rows

    async def read_events(
        self, owner: str | None, campaign_id: str, after: str, limit: int
    ) -> tuple[bool, list[StoredEvent]]:
        """``(terminal, events after the cursor)``; waits a little for news while running."""
        record = await self.get(owner, campaign_id)
        terminal = record.state.is_terminal()
        events = await asyncio.to_thread(
            self.store.read_events, campaign_id, after, limit, 0.0 if terminal else 1.0
        )
        return terminal, events

    async def finished_trial(
        self, owner: str | None, campaign_id: str, key: str
    ) -> tuple[CampaignRecord, TrialRow, dict[str, Any]]:
        """A DONE trial of the campaign with its stored result (for replay)."""
        record = await self.get(owner, campaign_id)
        row = await asyncio.to_thread(self.store.trial, campaign_id, key)
        if row is None or row.state is not TrialState.DONE:
            raise NotFoundError("trial", key, f"is not a finished trial of {campaign_id!r}")
        stored = (await asyncio.to_thread(self.store.lookup_results, [key]))[key]
        return record, row, stored

    async def report(self, owner: str | None, campaign_id: str) -> Report:
        record = await self.get(owner, campaign_id)
        if not record.meta_json:
            raise FailedPreconditionError(
                f"campaign {campaign_id!r} has no results yet (state {record.state.value})"
            )
        cache_key = (campaign_id, record.trials_done, record.state.value)
        report = self.reports.get(cache_key)
        if report is None:
            report = await asyncio.to_thread(self._aggregate, record)
            self.reports.put(cache_key, report)
        return report

    def _aggregate(self, record: CampaignRecord) -> Report:
        spec = parse_spec(record.spec_json)
        meta = json.loads(record.meta_json)
        report = get_engine(spec.kind).aggregate_pages(spec, meta, self._result_pages(record.id))
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

    def _result_pages(self, campaign_id: str) -> Iterator[list[TrialRecord]]:
        """The campaign's finished trials in plan order, :data:`REPORT_PAGE` at a time (keyset
        pages: a trial finishing meanwhile is neither skipped nor seen twice)."""
        start = 0
        while True:
            rows = self.store.result_texts(campaign_id, start, REPORT_PAGE)
            if not rows:
                return
            yield [TrialRecord(r.key, json.loads(r.trial_json), json.loads(r.result_json),
                               r.attempts) for r in rows]
            start = rows[-1].index + 1

    # --- guarded transitions ---------------------------------------------------------
    async def start(self, campaign_id: str) -> CampaignRecord | None:
        """QUEUED → RUNNING (a RUNNING campaign, after a restart, stays so). None when the
        campaign is gone or terminal. Only the lease holder starts campaigns, so a RUNNING
        campaign after a failed compare-and-set is this one's (a retry after a lost reply)."""
        record = await asyncio.to_thread(self.store.get_campaign, campaign_id)
        if record is None or record.state.is_terminal():
            return None
        if record.state is CampaignState.QUEUED and not await asyncio.to_thread(
            self.store.transition, campaign_id, [CampaignState.QUEUED], CampaignState.RUNNING
        ):
            record = await asyncio.to_thread(self.store.get_campaign, campaign_id)
            if record is None or record.state is not CampaignState.RUNNING:
                return None
        return record

    async def succeed(self, campaign_id: str, message: str) -> None:
        await asyncio.to_thread(
            self.store.transition, campaign_id, [CampaignState.RUNNING], CampaignState.SUCCEEDED,
            message=message,
        )

    async def fail(self, campaign_id: str, message: str) -> None:
        """Ends a campaign FAILED (the runner retries it through a store outage)."""
        await asyncio.to_thread(
            self.store.transition, campaign_id, ACTIVE_STATES, CampaignState.FAILED,
            error=message, message=message,
        )

    async def cancel(self, campaign_id: str) -> None:
        await asyncio.to_thread(
            self.store.transition, campaign_id, ACTIVE_STATES, CampaignState.CANCELLED,
            message="cancelled by request",
        )

    async def log(self, campaign_id: str, message: str, level: str = "info") -> None:
        await asyncio.to_thread(self.store.append_event, campaign_id, LogEvent(message, level))

    # --- recovery --------------------------------------------------------------------
    async def recover(self) -> list[CampaignRecord]:
        """Every non-terminal campaign, its RUNNING trials reset to PENDING, ready to resume."""
        active = await asyncio.to_thread(self.store.active_campaigns)
        for record in active:
            reset = await asyncio.to_thread(self.store.reset_running, record.id)
            await self.log(
                record.id, f"coordinator restarted: resuming ({reset} running trials reset)"
            )
        return active

    def close(self) -> None:
        self.store.close()
