"""Streams filtered by event type: a watcher asking for state and progress gets exactly those
events of the log, in order, once each, live or after the end; a filter with an unknown type
is INVALID_ARGUMENT naming the field and the allowed values."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest

from faultlab import Client
from faultlab.server.store import open_store
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc
from tests.service.specs import fault_spec


def _logged(store_url: str, campaign_id: str, types: set[str]) -> list[str]:
    store = open_store(store_url)
    try:
        return [e.cursor for e in store.read_events(campaign_id, limit=100_000)
                if e.event.type in types]
    finally:
        store.close()


def test_filtered_streams_see_exactly_their_types_live_and_after(
    server_factory: Any, store_url: str
) -> None:
    server = server_factory(store_url)
    with Client(server.address, timeout=60) as client:
        job = client.submit(fault_spec(trials=300, seed=81, size=32))
        live: dict[str, list[tuple[str, str]]] = {}

        def follow(name: str, types: tuple[str, ...]) -> None:
            live[name] = [(e.cursor, e.type) for e in job.events(types=types)]

        threads = [threading.Thread(target=follow, args=(name, types)) for name, types in
                   (("watch", ("progress",)), ("trials", ("trial", "state")), ("all", ()))]
        for thread in threads:
            thread.start()
        job.wait(timeout=120)
        for thread in threads:
            thread.join(timeout=60)
        after = [(e.cursor, e.type) for e in job.events(types=["progress", "log"])]
    watch = _logged(store_url, job.id, {"state", "progress"})
    assert [c for c, _ in live["watch"]] == watch
    assert {t for _, t in live["watch"]} == {"state", "progress"}
    assert [c for c, _ in live["trials"]] == _logged(store_url, job.id, {"state", "trial"})
    assert sum(t == "trial" for _, t in live["trials"]) == 300
    assert [c for c, _ in live["all"]] == _logged(
        store_url, job.id, {"state", "progress", "trial", "log", "curve"})
    assert [c for c, _ in after] == _logged(store_url, job.id, {"state", "progress", "log"})
    assert after[-1][1] == "state"  # the stream of a finished campaign ends after its end


def test_unknown_event_type_is_invalid_argument(server_factory: Any, sqlite_url: str) -> None:
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=60) as client:
        job = client.submit(fault_spec(trials=4, seed=82))
        job.wait(timeout=120)
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.FaultlabStub(channel)
            for types in (["progress", "trials"], ["x"] * 11):
                request = pb.StreamEventsRequest(campaign_id=job.id, types=types)
                with pytest.raises(grpc.RpcError) as bad:
                    list(stub.StreamEventBatches(request, timeout=10))
                assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert "types" in (bad.value.details() or "")
            request = pb.StreamEventsRequest(campaign_id=job.id, types=["progress", "trials"])
            with pytest.raises(grpc.RpcError) as bad:
                list(stub.StreamEventBatches(request, timeout=10))
            assert "state, progress, trial, log, curve" in (bad.value.details() or "")


def test_concurrent_streams_keep_their_tenants(server_factory: Any, sqlite_url: str) -> None:
    """The interceptor sets each RPC's tenant in that RPC's own task: streams of two tenants
    opened at once each see only what their tenant may, and a stream without a token is
    refused."""
    server = server_factory(sqlite_url, tokens={"ta": "alice", "tb": "bob"})
    with Client(server.address, token="ta") as alice, Client(server.address, token="tb") as bob:
        job = alice.submit(fault_spec(trials=40, seed=83))
        outcomes: dict[str, Any] = {}

        def follow(name: str, client: Client) -> None:
            try:
                outcomes[name] = len(list(client.get(job.id).events(types=["progress"])))
            except Exception as exc:  # noqa: BLE001 - the test inspects what was raised
                outcomes[name] = exc

        threads = [threading.Thread(target=follow, args=(f"{who}{i}", client))
                   for i in range(8) for who, client in (("a", alice), ("b", bob))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.FaultlabStub(channel)
            with pytest.raises(grpc.RpcError) as anonymous:
                list(stub.StreamEventBatches(pb.StreamEventsRequest(campaign_id=job.id),
                                             timeout=10))
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
    for name, outcome in outcomes.items():
        if name.startswith("a"):
            assert isinstance(outcome, int) and outcome >= 2, (name, outcome)
        else:
            assert type(outcome).__name__ == "NotFoundError", (name, outcome)
