"""Bad input gets a clear error with the right gRPC status, before any Ray work."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import grpc
import pytest

from faultlab import (
    ArgumentError,
    Client,
    NotFoundError,
    SpecError,
    UnauthenticatedError,
    UnavailableError,
)
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc
from tests.service.specs import fault_spec


@pytest.fixture
def server(server_factory, sqlite_url):  # type: ignore[no-untyped-def]
    return server_factory(sqlite_url)


def _raw_submit(address: str, spec_text: str) -> grpc.RpcError:
    """Submits without the SDK's client-side validation: the server is the authority."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.FaultlabStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.SubmitCampaign(pb.SubmitCampaignRequest(spec=spec_text), timeout=60)
    return info.value


def _with(**changes: object) -> str:
    spec = fault_spec()
    for path, value in changes.items():
        node = spec
        parts = path.split("__")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return json.dumps(spec)


BAD_SPECS = [
    ("kind: faults\nmodel: [unclosed", "spec", "malformed YAML"),
    (json.dumps({**fault_spec(), "kind": "voodoo"}), "kind", "faults"),
    (_with(model__name="no_such_model"), "model.name", "digits_cnn"),
    (_with(dataset__name="no_such_data"), "dataset.name", "digits"),
    (_with(faults__layers=["conv9"]), "faults.layers", "conv1"),
    (_with(dataset__size=-5), "dataset.size", ""),
    (_with(faults__trials=0), "faults.trials", ""),
    (_with(execution__max_inflight=10**9), "execution.max_inflight", ""),
    (_with(faults__bits=[40]), "faults.bits", ""),
    (_with(faults__margin=0), "faults.margin", ""),
    (_with(seed=-1), "seed", ""),
    (_with(unknown_field=1), "unknown_field", "execution"),
]


@pytest.mark.parametrize(("spec_text", "field", "hint"), BAD_SPECS)
def test_server_rejects_bad_spec(server, spec_text: str, field: str, hint: str) -> None:  # type: ignore[no-untyped-def]
    err = _raw_submit(server.address, spec_text)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details().startswith(field), err.details()
    assert hint in err.details()
    assert "Traceback" not in err.details()
    # Nothing was queued: no Ray work for bad input.
    with Client(server.address) as c:
        assert c.list() == []


@pytest.mark.parametrize(("spec_text", "field", "hint"), BAD_SPECS[:4] + BAD_SPECS[5:])
def test_sdk_validates_before_sending(server, spec_text: str, field: str, hint: str) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address) as c, pytest.raises(SpecError) as info:
        c.submit(spec_text if spec_text.startswith("kind:") else json.loads(spec_text))
    assert info.value.field == field


def test_absurd_plan_size_is_resource_exhausted(server) -> None:  # type: ignore[no-untyped-def]
    err = _raw_submit(server.address, _with(execution__max_trials=99_000_000))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "execution.max_trials" in err.details()


def test_unknown_id_is_not_found(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address) as c:
        for call in (c.get, lambda i: c.get(i).status()):
            with pytest.raises(NotFoundError):
                call("deadbeef")
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.FaultlabStub(channel)
            for method, request in [
                (stub.CancelCampaign, pb.CancelCampaignRequest(campaign_id="nope")),
                (stub.GetResults, pb.GetResultsRequest(campaign_id="nope")),
                (stub.GetReport, pb.GetReportRequest(campaign_id="nope")),
            ]:
                with pytest.raises(grpc.RpcError) as info:
                    method(request, timeout=10)
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as info:
                list(stub.StreamEvents(pb.StreamEventsRequest(campaign_id="nope"), timeout=10))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_unreachable_coordinator_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"127.0.0.1:{port}", timeout=3) as c, pytest.raises(UnavailableError):
        c.list()


def test_store_unreachable_is_unavailable(server_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)], stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        server = server_factory(f"redis://127.0.0.1:{port}/0")
        with Client(server.address, timeout=20) as c:
            assert c.list() == []
            proc.kill()
            proc.wait()
            with pytest.raises(UnavailableError) as info:
                c.list()
            assert "redis" in str(info.value).lower()
    finally:
        proc.kill()


def test_tokens_and_tenants(server_factory, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(sqlite_url, tokens={"tok-a": "alice", "tok-b": "bob"})
    with Client(server.address) as anon, pytest.raises(UnauthenticatedError):
        anon.list()
    with Client(server.address, token="wrong") as bad, pytest.raises(UnauthenticatedError):
        bad.list()
    with (
        Client(server.address, token="tok-a") as alice,
        Client(server.address, token="tok-b") as bob,
    ):
        job = alice.submit(fault_spec(trials=4, seed=77))
        assert job.status().owner == "alice"
        with pytest.raises(NotFoundError):
            bob.get(job.id)
        assert bob.list() == []
        job.wait()


def test_error_data_survives_the_wire(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address) as c:
        # The SDK cannot check layer names (no model here): the server's SpecError comes back
        # whole, with its allowed values.
        with pytest.raises(SpecError) as bad:
            c.submit(json.loads(_with(faults__layers=["conv9"])))
        assert bad.value.field == "faults.layers"
        assert bad.value.allowed is not None and "conv1" in bad.value.allowed
        with pytest.raises(NotFoundError) as missing:
            c.get("deadbeef")
        assert (missing.value.what, missing.value.id) == ("campaign", "deadbeef")


def test_bad_page_token_and_cursor_are_argument_errors(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address) as c:
        with pytest.raises(ArgumentError) as token:
            c._call(c._stub.ListCampaigns, pb.ListCampaignsRequest(page_token="bogus"))
        assert not isinstance(token.value, SpecError)
        assert (token.value.code, token.value.argument) == ("INVALID_ARGUMENT", "page_token")
        job = c.submit(fault_spec(trials=4, seed=5))
        with pytest.raises(ArgumentError) as cursor:
            list(job.events(cursor="not-a-cursor"))
        assert not isinstance(cursor.value, SpecError) and cursor.value.argument == "cursor"
        with pytest.raises(ArgumentError) as page:
            c._call(c._stub.GetResults,
                    pb.GetResultsRequest(campaign_id=job.id, page_token="-3"))
        assert page.value.argument == "page_token"
        job.wait()
