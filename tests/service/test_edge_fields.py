"""Every RPC field is validated at the edge: bad input is never INTERNAL, never a hang, and
the status it gets is always sendable and short (issue 13, item 6)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc
from tests.service.specs import fault_spec

BAD = ["99999999999999999999", "²", "-3", "1e5", " 1", "x" * 10_000, "\x1b[31m1"]
MAX_DETAILS = 400


@pytest.fixture(scope="module")
def stub(ray_session: None, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from faultlab.server.app import EmbeddedServer

    server = EmbeddedServer(f"sqlite://{tmp_path_factory.mktemp('edge') / 'f.db'}")
    channel = grpc.insecure_channel(server.address)
    yield pb_grpc.FaultlabStub(channel)
    channel.close()
    server.stop()


def _status(call: Callable[..., Any], request: Any) -> tuple[grpc.StatusCode, str]:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=20)
    assert time.monotonic() - started < 5
    details = info.value.details() or ""
    assert info.value.code() is not grpc.StatusCode.INTERNAL, details
    assert len(details) <= MAX_DETAILS and "\n" not in details and "\x1b" not in details
    return info.value.code(), details


@pytest.fixture(scope="module")
def campaign(stub) -> str:  # type: ignore[no-untyped-def]
    return str(stub.SubmitCampaign(pb.SubmitCampaignRequest(
        spec=json.dumps(fault_spec(trials=4, seed=11))), timeout=60).id)


@pytest.mark.parametrize("token", BAD)
def test_page_tokens(stub, campaign: str, token: str) -> None:  # type: ignore[no-untyped-def]
    code, details = _status(stub.ListCampaigns, pb.ListCampaignsRequest(page_token=token))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("page_token")
    code, _ = _status(stub.GetResults,
                      pb.GetResultsRequest(campaign_id=campaign, page_token=token))
    assert code is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("cursor", BAD)
def test_event_cursors(stub, campaign: str, cursor: str) -> None:  # type: ignore[no-untyped-def]
    request = pb.StreamEventsRequest(campaign_id=campaign, cursor=cursor)
    code, details = _status(lambda r, timeout: list(stub.StreamEvents(r, timeout=timeout)),
                            request)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("cursor")


@pytest.mark.parametrize("bad_id", ["", "../etc", "x" * 1_000_000, "\ufffd\u00b2", "a b"])
def test_ids_are_not_found_and_short(stub, bad_id: str) -> None:  # type: ignore[no-untyped-def]
    for call, request in [
        (stub.GetCampaign, pb.GetCampaignRequest(campaign_id=bad_id)),
        (stub.CancelCampaign, pb.CancelCampaignRequest(campaign_id=bad_id)),
        (stub.GetReport, pb.GetReportRequest(campaign_id=bad_id)),
        (stub.ReplayTrial, pb.ReplayTrialRequest(campaign_id=bad_id, trial_key=bad_id)),
    ]:
        code, _ = _status(call, request)
        assert code is grpc.StatusCode.NOT_FOUND


def test_sizes_and_request_ids(stub) -> None:  # type: ignore[no-untyped-def]
    code, _ = _status(stub.ListCampaigns, pb.ListCampaignsRequest(page_size=-1))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    spec = json.dumps(fault_spec(trials=4))
    code, details = _status(stub.SubmitCampaign,
                            pb.SubmitCampaignRequest(spec=spec, request_id="r" * 100_000))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details.startswith("request_id")
    code, _ = _status(stub.StatArtifact, pb.StatArtifactRequest(sha256="²" * 64))
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    code, _ = _status(stub.StatArtifact, pb.StatArtifactRequest(sha256="f" * 10_000))
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def _spec_with(**extra: Any) -> str:
    return json.dumps({**fault_spec(trials=4), **extra})


HOSTILE_SPECS = [
    "[" * 100_000,
    "{" * 100_000,
    "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 2000)),
    # A lone surrogate in a key (a JSON escape decodes to it): the status must still be sent.
    _spec_with().replace('"seed"', '"\\udc80seed"', 1),
    _spec_with().replace('"kind"', '"\\ud800"', 1),
    _spec_with(**{"k" * 500_000: 1}),
    _spec_with(name="\x1b[31m" + "n" * 600_000),
    json.dumps({**fault_spec(trials=4), "model": {"name": "digits_cnn",
                                                   "options": {"hidden": 10**18}}}),
    json.dumps({**fault_spec(trials=4), "model": {"name": "digits_cnn",
                                                   "options": {"hidden": [1] * 100_000}}}),
    json.dumps({**fault_spec(trials=10**15)}),
]


@pytest.mark.parametrize("spec", HOSTILE_SPECS, ids=range(len(HOSTILE_SPECS)))
def test_hostile_specs_get_short_sendable_statuses(stub, spec: str) -> None:  # type: ignore[no-untyped-def]
    code, details = _status(stub.SubmitCampaign, pb.SubmitCampaignRequest(spec=spec))
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.PERMISSION_DENIED), details


def test_the_server_still_answers_quickly(stub, campaign: str) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign), timeout=5)
    assert time.monotonic() - started < 1


# --- campaign errors users see (issue 13, item 7) ----------------------------------------
def _raise_on_worker(exc: BaseException) -> BaseException:
    import ray

    @ray.remote(max_retries=0)
    def fail() -> None:
        raise exc

    with pytest.raises(Exception) as info:
        ray.get(fail.remote())
    return info.value


def test_a_spec_error_from_a_worker_names_its_field(ray_session: None) -> None:
    from faultlab.errors import SpecError
    from faultlab.server.edge import user_error

    error = _raise_on_worker(SpecError("model.file", "does not fit digits_cnn", ["a.pt"]))
    assert isinstance(error, SpecError) and error.field == "model.file"
    assert user_error(error) == "model.file: does not fit digits_cnn (allowed: a.pt)"


def test_worker_tracebacks_become_one_clean_line(ray_session: None) -> None:
    from faultlab.server.edge import user_error

    error = _raise_on_worker(ValueError("\x1b[31mcannot read /srv/faultlab/x.pt from 10.0.0.7"
                                        ":6379 at 0x7f00deadbeef\x1b[0m\nsecond line"))
    assert "Traceback" in str(error) or "ray::" in str(error)
    line = user_error(error)
    assert line == "ValueError: cannot read <path> from <address> at <address>"
