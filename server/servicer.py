"""The gRPC servicer: translates wire messages to coordinator calls, and errors to statuses.

The servicer talks only to the :class:`Coordinator`. The tenant of each call comes from the
:class:`~faultlab.server.auth.AuthInterceptor` (:func:`~faultlab.server.auth.current_tenant`),
which authenticated it once. Every RPC goes through :func:`_rpc`, which hands any error to
:func:`faultlab.server.wire.abort`, the single place where errors become gRPC statuses.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import json
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from itertools import accumulate
from typing import Any, TypeVar

import grpc

from faultlab.errors import ArgumentError, SpecError
from faultlab.server import edge
from faultlab.server.auth import current_tenant
from faultlab.server.caches import LruCache
from faultlab.server.coordinator import Coordinator
from faultlab.server.store import CampaignRecord
from faultlab.server.store.base import ArtifactInfo, ResultText
from faultlab.server.streams import EventSlice
from faultlab.server.wire import abort
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

T = TypeVar("T")

MAX_PAGE = 1000
RESULT_ROWS = 10_000
"""Most trials in one ``GetResults`` page (``page_size`` 0 asks for as many as fit)."""
RESULT_CHARS = 3 << 20
"""Characters of stored JSON (ASCII) a result page stops at: below gRPC's default 4 MiB limit
on a received message, so that any client can read it."""
READ_ROWS = 1000
"""Trials read from the store at a time while a result page is filled."""
READ_AHEAD_S = 10.0
"""How long the read of a finished campaign's next result page, started early, is kept."""
SERVICE = pb.DESCRIPTOR.services_by_name["Faultlab"].full_name

_ResultRows = tuple[CampaignRecord, list[ResultText]]
_AheadKey = tuple[str, str, int, int]
_Ahead = tuple[float, asyncio.Future[_ResultRows]]


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
        try:
            async for piece in await self._subscription(request):
                for message in piece.messages:
                    yield message
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort(context, exc)

    async def StreamEventBatches(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """One ``EventBatch`` per wake-up, its bytes shared by the subscribers at its cursor."""
        try:
            async for piece in await self._subscription(request):
                yield piece.batch
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await abort(context, exc)

    async def _subscription(self, request: pb.StreamEventsRequest) -> AsyncIterator[EventSlice]:
        """The hub's stream itself (no generator in between: each message passes one frame)."""
        return await self.co.stream_events(
            current_tenant(), edge.campaign_id(request.campaign_id),
            edge.event_cursor(request.cursor), request.keep_open_after_terminal,
            edge.event_types(request.types),
        )

    @_rpc
    async def GetResults(self, request: pb.GetResultsRequest, context: Any) -> pb.ResultPage:
        # The token is the plan index the page starts at (keyset paging: O(page) at any
        # depth); the stored JSON goes out as it is, never decoded and re-encoded. The page is
        # filled READ_ROWS at a time until it holds page_size trials or RESULT_CHARS (the
        # server holds one page, never the campaign); each read is started before the rows of
        # the one before are added, so the store works while the page is built. Once a
        # finished campaign's page is done, the first read of the page after it is started too
        # (:data:`_READ_AHEAD`): the store works while this page is sent and the next asked for.
        start = edge.page_offset(request.page_token)
        size = edge.page_size(request.page_size, RESULT_ROWS, RESULT_ROWS)
        tenant, campaign_id = current_tenant(), edge.campaign_id(request.campaign_id)

        def read(first: int, rows: int) -> asyncio.Future[_ResultRows]:
            return _READ_AHEAD.take(self, (tenant, campaign_id, first, rows)) or \
                asyncio.ensure_future(self.co.results_page(tenant, campaign_id, first, rows + 1))

        page, used, chunk = pb.ResultPage(), 0, min(size, READ_ROWS)
        reading: asyncio.Future[_ResultRows] | None = read(start, chunk)
        try:
            while reading is not None:
                record, rows = await reading
                reading, more, current = None, len(rows) > chunk, rows[:chunk]
                weights = [_weight(row) for row in current]
                if more:  # the next read: about what still fits, at these rows' size
                    have, after = len(page.records) + len(current), used + sum(weights)
                    fits = min(size - have, READ_ROWS, (RESULT_CHARS - after) * have // after + 1)
                    if fits > 0 and after < RESULT_CHARS:
                        reading, chunk = read(rows[chunk].index, fits), fits
                stop, used = _fill_page(page, current, weights, size, used)
                if stop is None and more and reading is None:
                    stop = rows[-1].index
                if stop is not None or reading is None:
                    page.next_page_token = "" if stop is None else str(stop)
                    page.total = record.trials_done
                    if stop is not None and record.state.is_terminal():  # its rows are final
                        first = min(size, READ_ROWS)
                        _READ_AHEAD.put(self, (tenant, campaign_id, stop, first), read(stop, first))
                    return page
        finally:
            if reading is not None:
                reading.cancel()
        raise AssertionError("a page ends when its last read does")

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


def _weight(row: ResultText) -> int:
    """What a row weighs in a result page: its texts' characters and a little framing."""
    return len(row.key) + len(row.trial_json) + len(row.result_json) + 16


def _fill_page(page: pb.ResultPage, rows: list[ResultText], weights: list[int], size: int,
               used: int) -> tuple[int | None, int]:
    """Adds rows (each of ``weights[i]``, :func:`_weight`) while the page has room (at least
    one row, however large); returns the plan index of the first row left out (None: all
    added) and the characters the page holds."""
    totals = list(accumulate(weights, initial=used))  # totals[k]: with k rows more
    fit = bisect.bisect_right(totals, RESULT_CHARS) - 1  # rows while within RESULT_CHARS
    count = max(0, min(len(rows), size - len(page.records), max(fit, 0 if used else 1)))
    add = page.records.add
    for row in rows[:count]:
        add(key=row.key, trial_json=row.trial_json, result_json=row.result_json,
            attempts=row.attempts)
    return (rows[count].index if count < len(rows) else None), totals[count]


class _ReadAhead:
    """Result reads started for the page a client is expected to ask for next, by servicer and
    (tenant, campaign, first index, rows): a few, each kept :data:`READ_AHEAD_S` at most, so a
    client that stops paging costs one read. Only finished campaigns' reads are kept: their
    rows never change, so a read started early returns what a read started later would."""

    def __init__(self, entries: int = 16) -> None:
        self._reads: weakref.WeakKeyDictionary[object, OrderedDict[_AheadKey, _Ahead]] = (
            weakref.WeakKeyDictionary())
        self._entries = entries

    def put(self, owner: object, key: _AheadKey, read: asyncio.Future[_ResultRows]) -> None:
        read.add_done_callback(lambda f: f.cancelled() or f.exception())  # errors: the taker's
        reads = self._reads.setdefault(owner, OrderedDict())
        if (dropped := reads.pop(key, None)) is not None:
            dropped[1].cancel()
        reads[key] = (time.monotonic(), read)
        while len(reads) > self._entries:  # the oldest read is not wanted any more
            reads.popitem(last=False)[1][1].cancel()

    def take(self, owner: object, key: _AheadKey) -> asyncio.Future[_ResultRows] | None:
        reads = self._reads.get(owner)
        ahead = reads.pop(key, None) if reads is not None else None
        if ahead is None:
            return None
        started, read = ahead
        if (time.monotonic() - started > READ_AHEAD_S
                or read.get_loop() is not asyncio.get_running_loop()):
            read.cancel()
            return None
        return read


_READ_AHEAD = _ReadAhead()


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
