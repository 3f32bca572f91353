"""The gRPC servicer: translates wire messages to coordinator calls, and errors to statuses.

The servicer talks only to the :class:`Coordinator`. The tenant of each call comes from the
:class:`~faultlab.server.auth.AuthInterceptor` (:func:`~faultlab.server.auth.current_tenant`),
which authenticated it once. Every RPC goes through :func:`_rpc`, which hands any error to
:func:`faultlab.server.wire.abort`, the single place where errors become gRPC statuses.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from faultlab.errors import ArgumentError, SpecError
from faultlab.server import edge
from faultlab.server.auth import current_tenant
from faultlab.server.caches import LruCache
from faultlab.server.coordinator import Coordinator
from faultlab.server.store import CampaignRecord
from faultlab.server.store.base import ArtifactInfo
from faultlab.server.streams import EventSlice
from faultlab.server.wire import abort
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

T = TypeVar("T")

MAX_PAGE = 1000
SERVICE = pb.DESCRIPTOR.services_by_name["Faultlab"].full_name


def campaign_message(record: CampaignRecord) -> pb.Campaign:
    return pb.Campaign(
        id=record.id, name=record.name, kind=record.kind,
        state=record.state.value, owner=record.owner,
        spec_json=record.spec_json, spec_hash=record.spec_hash, seed=record.seed,
        code_version=record.code_version, trials_total=record.trials_total,
        trials_done=record.trials_done, trials_cached=record.trials_cached,
        trials_failed=record.trials_failed, created_at=record.created_at,
        updated_at=record.updated_at, error=record.error, request_id=record.request_id,
    )


def artifact_message(info: ArtifactInfo) -> pb.Artifact:
    return pb.Artifact(sha256=info.digest, size=info.size, owner=info.owner,
                       created_at=info.created, name=info.name)


async def _upload_chunks(
    requests: AsyncIterable[pb.UploadArtifactRequest],
) -> AsyncIterator[bytes]:
    async for message in requests:
        if message.WhichOneof("part") != "chunk":
            raise ArgumentError("header", "only the first message of an upload is a header")
        yield message.chunk


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
            await abort(context, exc)

    return wrapper


class FaultlabServicer(pb_grpc.FaultlabServicer):
    """Implements ``faultlab.v1.Faultlab`` on top of a :class:`Coordinator`."""

    def __init__(self, coordinator: Coordinator, finished_entries: int = 4096) -> None:
        self.co = coordinator
        self._finished: LruCache[str, tuple[str, pb.Campaign]] = LruCache(finished_entries)
        """``(owner, message)`` of finished campaigns: a terminal state and its counters never
        change (the stores fence every later write), so polling one reads no store."""

    @_rpc
    async def SubmitCampaign(self, request: pb.SubmitCampaignRequest, context: Any) -> pb.Campaign:
        if not request.spec.strip():
            raise SpecError("spec", "is empty")
        if request.validate_only:  # `faultlab validate --address`: nothing is stored
            spec = await self.co.validate(current_tenant(), request.spec)
            return pb.Campaign(kind=spec.kind, name=spec.name or spec.kind,
                               spec_json=spec.to_json(), spec_hash=spec.spec_hash, seed=spec.seed)
        record = await self.co.submit(
            current_tenant(), request.spec, edge.request_id(request.request_id)
        )
        return campaign_message(record)

    @_rpc
    async def GetCampaign(self, request: pb.GetCampaignRequest, context: Any) -> pb.Campaign:
        campaign_id = edge.campaign_id(request.campaign_id)
        tenant = current_tenant()
        finished = self._finished.get(campaign_id)
        if finished is not None and finished[0] == tenant:
            return finished[1]
        record = await self.co.get(tenant, campaign_id)
        message = campaign_message(record)
        if record.state.is_terminal():
            self._finished.put(campaign_id, (record.owner, message))
        return message

    @_rpc
    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: Any
    ) -> pb.ListCampaignsResponse:
        offset = edge.page_offset(request.page_token)
        size = edge.page_size(request.page_size, 50, MAX_PAGE)
        records = await self.co.list_campaigns(current_tenant(), size + 1, offset)
        more = len(records) > size
        return pb.ListCampaignsResponse(
            campaigns=[campaign_message(r) for r in records[:size]],
            next_page_token=str(offset + size) if more else "",
        )

    @_rpc
    async def CancelCampaign(self, request: pb.CancelCampaignRequest, context: Any) -> pb.Campaign:
        campaign_id = edge.campaign_id(request.campaign_id)
        return campaign_message(await self.co.cancel(current_tenant(), campaign_id))

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """One message per event: each event's bytes, serialised once for every subscriber."""
        async for piece in self._stream(request, context):
            for message in piece.messages:
                yield message

    async def StreamEventBatches(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """One ``EventBatch`` per wake-up, its bytes shared by the subscribers at its cursor."""
        async for piece in self._stream(request, context):
            yield piece.batch

    async def _stream(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[EventSlice]:
        try:
            tenant = current_tenant()
            campaign_id = edge.campaign_id(request.campaign_id)
            cursor = edge.event_cursor(request.cursor)
            async for piece in self.co.stream_events(
                tenant, campaign_id, cursor, request.keep_open_after_terminal
            ):
                yield piece
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort(context, exc)

    @_rpc
    async def GetResults(self, request: pb.GetResultsRequest, context: Any) -> pb.ResultPage:
        # The token is the plan index the page starts at (keyset paging: O(page) at any
        # depth); the stored JSON goes out as it is, never decoded and re-encoded.
        start = edge.page_offset(request.page_token)
        size = edge.page_size(request.page_size, 500, MAX_PAGE)
        record, rows = await self.co.results_page(
            current_tenant(), edge.campaign_id(request.campaign_id), start, size + 1
        )
        more = len(rows) > size
        return pb.ResultPage(
            records=[
                pb.TrialRecord(key=row.key, trial_json=row.trial_json,
                               result_json=row.result_json, attempts=row.attempts)
                for row in rows[:size]
            ],
            next_page_token=str(rows[size].index) if more else "",
            total=record.trials_done,
        )

    @_rpc
    async def GetReport(self, request: pb.GetReportRequest, context: Any) -> pb.Report:
        report = await self.co.report(current_tenant(), edge.campaign_id(request.campaign_id))
        return pb.Report(report_json=report.to_json())

    @_rpc
    async def ReplayTrial(
        self, request: pb.ReplayTrialRequest, context: Any
    ) -> pb.ReplayTrialResponse:
        trial, stored, replayed, same = await self.co.replay(
            current_tenant(), edge.campaign_id(request.campaign_id),
            edge.trial_key(request.trial_key),
        )
        return pb.ReplayTrialResponse(
            trial_json=json.dumps(trial), stored_result_json=json.dumps(stored),
            replayed_result_json=json.dumps(replayed), identical=same,
        )

    @_rpc
    async def UploadArtifact(
        self, requests: AsyncIterator[pb.UploadArtifactRequest], context: Any
    ) -> pb.Artifact:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("part") != "header":
            raise ArgumentError("header", "the first message of an upload must be its header")
        header = first.header
        info = await self.co.upload_artifact(
            current_tenant(), edge.digest(header.sha256), header.size,
            edge.artifact_name(header.name), _upload_chunks(requests),
        )
        return artifact_message(info)

    @_rpc
    async def StatArtifact(self, request: pb.StatArtifactRequest, context: Any) -> pb.Artifact:
        digest = edge.digest(request.sha256)
        return artifact_message(await self.co.stat_artifact(current_tenant(), digest))


def _message_or_bytes(message: Any) -> bytes:
    """Serialises a response, passing bytes serialised beforehand (event streams) through."""
    return message if isinstance(message, bytes) else bytes(message.SerializeToString())


class _Handlers:
    """Stands in for the server while the generated code registers its handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """The generated code registers each handler twice; the named ones suffice."""

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.handlers = dict(handlers)


def add_servicer(servicer: FaultlabServicer, server: grpc.aio.Server) -> None:
    """Registers ``servicer`` as the generated ``add_FaultlabServicer_to_server`` does, except
    that the event streams send bytes they serialised once (every subscriber shares them)."""
    generated = _Handlers()
    pb_grpc.add_FaultlabServicer_to_server(servicer, generated)
    handlers = generated.handlers
    for name in ("StreamEvents", "StreamEventBatches"):
        handlers[name] = grpc.unary_stream_rpc_method_handler(
            getattr(servicer, name), request_deserializer=pb.StreamEventsRequest.FromString,
            response_serializer=_message_or_bytes,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


__all__ = ["FaultlabServicer", "add_servicer", "artifact_message", "campaign_message"]
