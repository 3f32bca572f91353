"""Fetching a campaign's results: ``GetResults`` pages, pipelined.

The next page is requested (``.future``) as soon as the current one's token arrives, so the
coordinator reads it from its store while this side unpacks the current one, and each page is
parsed into Arrow on a worker thread while the next is on the wire
(:class:`~faultlab.client._results_table.ResultPages`): ``to_pandas()`` / ``to_table()`` then
join the pages' tables (or parse all the records at once where the pages' shapes differ in a
way only the whole can settle). Pages are as large as the coordinator allows (about 3 MiB of
stored JSON) unless the caller asks for fewer rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import grpc

from faultlab.client._errors import translate
from faultlab.client._models import Results
from faultlab.client._results_table import ResultPages
from faultlab.v1 import faultlab_pb2 as pb

if TYPE_CHECKING:
    from faultlab.client._client import Client


def fetch_results(client: Client, campaign_id: str, page_size: int | None = None) -> Results:
    """Every finished trial record of the campaign, in plan order (``page_size`` rows at most
    per request; ``None``: as many as the coordinator sends in one message)."""
    stub, metadata = client._stub, client._metadata

    def request(token: str) -> Any:
        message = pb.GetResultsRequest(campaign_id=campaign_id, page_size=page_size or 0,
                                       page_token=token)
        return stub.GetResults.future(message, timeout=client.timeout, metadata=metadata)

    executor = ThreadPoolExecutor(1, thread_name_prefix="faultlab-results")
    raw = ResultPages(executor)
    pending = request("")
    try:
        while pending is not None:
            try:
                page = pending.result()
            except grpc.RpcError as exc:
                raise translate(exc, client.address) from None
            token = page.next_page_token
            pending = request(token) if token else None
            raw.add([(r.key, r.attempts, r.trial_json, r.result_json) for r in page.records])
    finally:
        if pending is not None:  # an error: the request in flight is not wanted
            pending.cancel()
        executor.shutdown(wait=False)  # the pages' tables still get built
    return Results(campaign_id, raw=raw)
