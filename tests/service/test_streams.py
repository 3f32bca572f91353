"""Streams don't consume the coordinator: 200 subscribers of a running campaign cost one
reader and one message per wake-up each, the campaign runs within a bound of its time with
none, and every subscriber sees every event exactly once, in order. Subscribers per tenant
are bounded."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

import grpc
import pytest

from faultlab import CampaignState, Client
from faultlab.server.config import CoordinatorConfig
from faultlab.server.store import open_store
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc
from tests.marks import skip_unless_slow
from tests.service.specs import fault_spec

SUBSCRIBERS = 200
TRIALS = 1800
SLOW = bool(os.environ.get("FAULTLAB_SLOW"))
# The subscribers run in a process of their own, as remote clients would: the measurement is
# the coordinator's, not this test process's GIL. It reads a campaign id from stdin, streams
# it N times at once and prints, per subscriber, the sha256 of its cursors in order.
_SUBSCRIBER = """
import asyncio, hashlib, json, sys
import grpc
from faultlab.v1 import faultlab_pb2 as pb, faultlab_pb2_grpc as pb_grpc

async def main(address, n, types):
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()
        print("ready", flush=True)
        campaign_id = sys.stdin.readline().strip()
        stub = pb_grpc.FaultlabStub(channel)
        async def one():
            request = pb.StreamEventsRequest(campaign_id=campaign_id, types=types)
            stream = stub.StreamEventBatches(request, timeout=120)
            cursors = [m.cursor async for batch in stream for m in batch.events]
            return hashlib.sha256("\\n".join(cursors).encode()).hexdigest()
        print(json.dumps(await asyncio.gather(*(one() for _ in range(n)))))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), [t for t in sys.argv[3].split(",") if t]))
"""


def _duration(client: Client, campaign_id: str) -> float:
    status = client.get(campaign_id).wait(timeout=120)
    assert status.state is CampaignState.SUCCEEDED
    message = client._stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign_id))
    return float(message.updated_at - message.created_at)


def _watched(server: Any, types: str) -> tuple[float, float, str, list[str]]:
    """(the campaign alone, with SUBSCRIBERS following ``types``, its id, each one's digest)."""
    with Client(server.address, timeout=60) as client:
        # Warmed by the same campaign (the first pays for worker start-up and shard sizing),
        # so that the run with subscribers is compared with a run like it.
        client.get(client.submit(fault_spec(trials=600, seed=71, size=120)).id).wait(timeout=120)
        alone = _duration(client, client.submit(fault_spec(trials=TRIALS, seed=72, size=120)).id)
        readers = subprocess.Popen(
            [sys.executable, "-c", _SUBSCRIBER, server.address, str(SUBSCRIBERS), types],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert readers.stdout is not None and readers.stdout.readline() == "ready\n"
        job = client.submit(fault_spec(trials=TRIALS, seed=73, size=120))
        out, _ = readers.communicate(job.id + "\n", timeout=180)
        watched = _duration(client, job.id)
        # Again after it: the baseline is the faster of the two runs without subscribers, so
        # a warm-up that lingers into the first one cannot flatter the run with them.
        again = _duration(client, client.submit(fault_spec(trials=TRIALS, seed=75, size=120)).id)
    return min(alone, again), watched, job.id, json.loads(out)


def _expected(store_url: str, campaign_id: str, types: str) -> str:
    wanted = set(types.split(",")) | {"state"} if types else None
    store = open_store(store_url)
    try:
        cursors = [e.cursor for e in store.read_events(campaign_id, limit=100_000)
                   if wanted is None or e.event.type in wanted]
    finally:
        store.close()
    return hashlib.sha256("\n".join(cursors).encode()).hexdigest()


def test_200_subscribers_see_everything_and_cost_the_campaign_little(
    server_factory: Any, store_url: str
) -> None:
    if store_url.startswith("sqlite"):
        skip_unless_slow()
    alone, watched, campaign_id, seen = _watched(server_factory(store_url), "")
    assert seen == [_expected(store_url, campaign_id, "")] * SUBSCRIBERS
    # Each subscriber gets one EventBatch per wake-up of the campaign's feed (spaced 0.2 ms per
    # subscriber: ~25 a second here), not one message per event, and every event is serialised
    # once. On this 2-core machine, shared with other work (load 10-15) and with the
    # subscribers' own process on the same cores, the run with 200 subscribers of the whole log
    # (1800 trial records each) took 1.9-2.1x the faster run without (it was 78x with 50
    # subscribers when each held a thread); most of what remains is the client's CPU and the
    # 200 RPC set-ups. A default run guards 3x; FAULTLAB_SLOW=1 (a quiet machine) checks 2x.
    bound = 2.0 * alone + 0.5 if SLOW else 3.0 * alone + 0.5
    assert watched <= bound, (watched, alone)


def test_200_watchers_cost_the_campaign_little(server_factory: Any, redis_url: str) -> None:
    """200 subscribers as ``faultlab watch`` follows a campaign (state and progress): each sees
    exactly those events of the log, and the campaign runs within 1.5x its time alone."""
    alone, watched, campaign_id, seen = _watched(server_factory(redis_url), "state,progress")
    assert seen == [_expected(redis_url, campaign_id, "state,progress")] * SUBSCRIBERS
    bound = 1.5 * alone + 0.5
    assert watched <= bound, (watched, alone)


def test_streams_per_tenant_are_bounded(server_factory: Any, sqlite_url: str) -> None:
    config = CoordinatorConfig(num_cpus=2, max_streams_per_tenant=2)
    server = server_factory(sqlite_url, config=config)
    with Client(server.address, timeout=60) as client:
        job = client.submit(fault_spec(trials=8, seed=74))
        job.wait(timeout=120)
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.FaultlabStub(channel)
            request = pb.StreamEventsRequest(campaign_id=job.id, keep_open_after_terminal=True)
            held = [stub.StreamEvents(request) for _ in range(2)]
            for stream in held:
                next(stream)  # each is open and holding its slot
            with pytest.raises(grpc.RpcError) as refused:
                next(stub.StreamEvents(request))
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            for stream in held:
                stream.cancel()
