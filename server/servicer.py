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
from faultlab.events import event_to_proto
from faultlab.server import edge
from faultlab.server.auth import current_tenant
from faultlab.server.caches import LruCache
from faultlab.server.coordinator import Coordinator
from faultlab.server.store import CampaignRecord
from faultlab.server.store.base import ArtifactInfo
from faultlab.server.wire import abort
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

T = TypeVar("T")

MAX_PAGE = 1000


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

    def __init__(self, coordinator: Coordinator) -> None:
        self.co = coordinator
        self._messages: LruCache[tuple[str, str], pb.Event] = LruCache(8192)
        """Wire messages of recent events: N subscribers of a campaign convert each once."""

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
        return campaign_message(await self.co.get(current_tenant(), campaign_id))

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
    ) -> AsyncIterator[pb.Event]:
        try:
            tenant = current_tenant()
            campaign_id = edge.campaign_id(request.campaign_id)
            cursor = edge.event_cursor(request.cursor)
            batches = self.co.stream_events(
                tenant, campaign_id, cursor, request.keep_open_after_terminal
            )
            async for batch in batches:
                for event in batch:
                    message = self._messages.get((campaign_id, event.cursor))
                    if message is None:
                        message = event_to_proto(campaign_id, event)
                        self._messages.put((campaign_id, event.cursor), message)
                    yield message
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort(context, exc)

    @_rpc
    async def GetResults(self, request: pb.GetResultsRequest, context: Any) -> pb.ResultPage:
        offset = edge.page_offset(request.page_token)
        size = edge.page_size(request.page_size, 500, MAX_PAGE)
        record, rows = await self.co.results_page(
            current_tenant(), edge.campaign_id(request.campaign_id), offset, size + 1
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


__all__ = ["FaultlabServicer", "artifact_message", "campaign_message"]
