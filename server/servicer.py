"""The gRPC servicer: translates wire messages to coordinator calls, and errors to statuses.

Every RPC goes through :func:`_rpc`, the single place where faultlab errors become gRPC
statuses (INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, RESOURCE_EXHAUSTED, ...). Anything
unexpected is logged with its traceback on the server and answered INTERNAL with a one-line
message, never a traceback on the wire.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from faultlab.errors import FaultlabError, NotFoundError, SpecError, UnauthenticatedError
from faultlab.server.auth import Authenticator
from faultlab.server.coordinator import Coordinator
from faultlab.server.store import CampaignRecord, StoredEvent
from faultlab.states import CampaignState
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

log = logging.getLogger("faultlab.servicer")
T = TypeVar("T")

MAX_PAGE = 1000


def campaign_message(record: CampaignRecord) -> pb.Campaign:
    return pb.Campaign(
        id=record.id, name=record.name, kind=record.kind,
        state=pb.CampaignState.Value(record.state.value), owner=record.owner,
        spec_json=record.spec_json, spec_hash=record.spec_hash, seed=record.seed,
        code_version=record.code_version, trials_total=record.trials_total,
        trials_done=record.trials_done, trials_cached=record.trials_cached,
        trials_failed=record.trials_failed, created_at=record.created_at,
        updated_at=record.updated_at, error=record.error, request_id=record.request_id,
    )


def event_message(campaign_id: str, event: StoredEvent) -> pb.Event:
    data = event.data
    msg = pb.Event(cursor=event.cursor, campaign_id=campaign_id, time=event.time)
    kind = data.get("type")
    if kind == "state":
        msg.state.CopyFrom(pb.StateChange(
            state=pb.CampaignState.Value(str(data["state"])), message=data.get("message", "")))
    elif kind == "progress":
        msg.progress.CopyFrom(pb.Progress(
            done=int(data.get("done", 0)), total=int(data.get("total", 0)),
            cached=int(data.get("cached", 0)), failed=int(data.get("failed", 0))))
    elif kind == "trial":
        msg.trial.CopyFrom(pb.TrialDone(
            key=data["key"], trial_json=json.dumps(data.get("trial", {})),
            result_json=json.dumps(data.get("result", {})), cached=bool(data.get("cached"))))
    else:
        msg.log.CopyFrom(pb.LogLine(level=str(data.get("level", "info")),
                                    message=str(data.get("message", ""))))
    return msg


def _page(token: str, field: str) -> int:
    if not token:
        return 0
    try:
        offset = int(token)
    except ValueError:
        raise SpecError(field, f"invalid page token {token!r}") from None
    if offset < 0:
        raise SpecError(field, f"invalid page token {token!r}")
    return offset


def _page_size(size: int, default: int) -> int:
    if size < 0:
        raise SpecError("page_size", f"must be >= 0, got {size}")
    return min(size or default, MAX_PAGE)


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, FaultlabError) and exc.code != grpc.StatusCode.UNKNOWN:
        await context.abort(exc.code, exc.message)
    log.exception("unexpected error in RPC", exc_info=exc)
    message = exc.message if isinstance(exc, FaultlabError) else f"{type(exc).__name__}: {exc}"
    await context.abort(grpc.StatusCode.INTERNAL, message.splitlines()[0] if message else "internal error")


def _rpc(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(fn)
    async def wrapper(self: FaultlabServicer, request: Any, context: grpc.aio.ServicerContext) -> T:
        try:
            return await fn(self, request, context)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)
            raise  # unreachable: abort raises

    return wrapper


class FaultlabServicer(pb_grpc.FaultlabServicer):
    """Implements ``faultlab.v1.Faultlab`` on top of a :class:`Coordinator`."""

    def __init__(self, coordinator: Coordinator, auth: Authenticator) -> None:
        self.co = coordinator
        self.auth = auth

    def _tenant(self, context: grpc.aio.ServicerContext) -> str:
        tenant = self.auth.tenant(context.invocation_metadata())
        if tenant is None:
            raise UnauthenticatedError("missing or invalid token")
        return tenant

    @_rpc
    async def SubmitCampaign(self, request: pb.SubmitCampaignRequest, context: Any) -> pb.Campaign:
        if not request.spec.strip():
            raise SpecError("spec", "is empty")
        record = await self.co.submit(self._tenant(context), request.spec, request.request_id)
        return campaign_message(record)

    @_rpc
    async def GetCampaign(self, request: pb.GetCampaignRequest, context: Any) -> pb.Campaign:
        return campaign_message(await self.co.get(self._tenant(context), request.campaign_id))

    @_rpc
    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: Any
    ) -> pb.ListCampaignsResponse:
        offset = _page(request.page_token, "page_token")
        size = _page_size(request.page_size, 50)
        records = await self.co.list_campaigns(self._tenant(context), size + 1, offset)
        more = len(records) > size
        return pb.ListCampaignsResponse(
            campaigns=[campaign_message(r) for r in records[:size]],
            next_page_token=str(offset + size) if more else "",
        )

    @_rpc
    async def CancelCampaign(self, request: pb.CancelCampaignRequest, context: Any) -> pb.Campaign:
        return campaign_message(await self.co.cancel(self._tenant(context), request.campaign_id))

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Event]:
        try:
            tenant = self._tenant(context)
            cursor = request.cursor
            while True:
                record = await self.co.get(tenant, request.campaign_id)
                terminal = record.state.is_terminal()
                events = await asyncio.to_thread(
                    self.co.store.read_events, request.campaign_id, cursor, 500,
                    0.0 if terminal else 1.0,
                )
                for event in events:
                    cursor = event.cursor
                    yield event_message(request.campaign_id, event)
                if terminal and not events and not request.keep_open_after_terminal:
                    return
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    @_rpc
    async def GetResults(self, request: pb.GetResultsRequest, context: Any) -> pb.ResultPage:
        record = await self.co.get(self._tenant(context), request.campaign_id)
        offset = _page(request.page_token, "page_token")
        size = _page_size(request.page_size, 500)
        rows = await asyncio.to_thread(
            self.co.store.campaign_results, record.id, offset, size + 1
        )
        more = len(rows) > size
        return pb.ResultPage(
            records=[
                pb.TrialRecord(key=row.key, trial_json=json.dumps(row.trial),
                               result_json=json.dumps(result), attempts=row.attempts)
                for row, result in rows[:size]
            ],
            next_page_token=str(offset + size) if more else "",
            total=record.trials_done,
        )

    @_rpc
    async def GetReport(self, request: pb.GetReportRequest, context: Any) -> pb.Report:
        report = await self.co.report(self._tenant(context), request.campaign_id)
        return pb.Report(report_json=report.to_json())

    @_rpc
    async def ReplayTrial(
        self, request: pb.ReplayTrialRequest, context: Any
    ) -> pb.ReplayTrialResponse:
        if not request.trial_key:
            raise NotFoundError("trial_key is empty")
        trial, stored, replayed, same = await self.co.replay(
            self._tenant(context), request.campaign_id, request.trial_key
        )
        return pb.ReplayTrialResponse(
            trial_json=json.dumps(trial), stored_result_json=json.dumps(stored),
            replayed_result_json=json.dumps(replayed), identical=same,
        )


__all__ = ["FaultlabServicer", "CampaignState", "campaign_message", "event_message"]
