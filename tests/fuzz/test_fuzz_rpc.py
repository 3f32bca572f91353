"""Property-based fuzzing of specs and RPC fields (issue 13): whatever arrives, the answer is
never INTERNAL, never takes over 5 s, and GetCampaign keeps answering within 100 ms (p95)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc
from tests.service.specs import fault_spec

FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["99999999999999999999", "²", "-1", "0", "1-0", "\x1b[0m", "\udc80", "a" * 5000])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
FIELDS = ["kind", "name", "seed", "model", "dataset", "execution", "faults", "model.name",
          "model.options", "dataset.size", "faults.bits", "faults.layers", "faults.trials",
          "execution.max_inflight", "faults.fault_model", "faults.sampling"]


class Probe:
    """A coordinator, a stub, and GetCampaign latencies measured throughout."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = pb_grpc.FaultlabStub(self.channel)
        self.known = self.stub.SubmitCampaign(pb.SubmitCampaignRequest(
            spec=json.dumps(fault_spec(trials=4, seed=90))), timeout=60).id
        self.latencies: list[float] = []
        deadline = time.monotonic() + 120  # finished: its event stream ends, never waits
        while pb.CampaignState.Name(self.stub.GetCampaign(
                pb.GetCampaignRequest(campaign_id=self.known), timeout=5).state) not in TERMINAL:
            assert time.monotonic() < deadline
            time.sleep(0.2)

    def call(self, method: Callable[..., Any], request: Any) -> None:
        started = time.monotonic()
        try:
            result = method(request, timeout=10)
            if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
                list(result)
        except grpc.RpcError as exc:
            assert exc.code() is not grpc.StatusCode.INTERNAL, exc.details()
            assert exc.code() is not grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 5
        self.poll()

    def poll(self) -> None:
        started = time.perf_counter()
        self.stub.GetCampaign(pb.GetCampaignRequest(campaign_id=self.known), timeout=5)
        self.latencies.append(time.perf_counter() - started)


@pytest.fixture(scope="module")
def probe(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    from faultlab.server.app import EmbeddedServer

    server = EmbeddedServer(f"sqlite://{tmp_path_factory.mktemp('fuzz') / 'f.db'}")
    probe = Probe(server.address)
    yield probe
    probe.channel.close()
    server.stop()
    ordered = sorted(probe.latencies)
    assert ordered[int(0.95 * (len(ordered) - 1))] < 0.1, "GetCampaign p95 over 100 ms"


def _set(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else node
    node[last] = value
    return spec


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON, as_yaml=st.booleans())
def test_mutated_specs(probe: Probe, field: str, value: Any, as_yaml: bool) -> None:
    spec = _set(fault_spec(trials=4), field, value)
    text = json.dumps(spec, allow_nan=True)
    if as_yaml:
        import yaml

        text = yaml.safe_dump(json.loads(text))
    probe.call(probe.stub.SubmitCampaign, pb.SubmitCampaignRequest(spec=text))


@FUZZ
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(
    lambda b: b.decode("latin-1")))
def test_arbitrary_spec_text(probe: Probe, text: str) -> None:
    probe.call(probe.stub.SubmitCampaign, pb.SubmitCampaignRequest(spec=text))


@FUZZ
@given(token=TEXT, cursor=TEXT, campaign=TEXT, size=st.integers(-(2**31), 2**31 - 1))
def test_rpc_fields(probe: Probe, token: str, cursor: str, campaign: str, size: int) -> None:
    text = token.encode("utf-8", "replace").decode("utf-8")
    ident = campaign.encode("utf-8", "replace").decode("utf-8") or probe.known
    mark = cursor.encode("utf-8", "replace").decode("utf-8")
    stub = probe.stub
    probe.call(stub.ListCampaigns, pb.ListCampaignsRequest(page_token=text, page_size=size))
    probe.call(stub.GetResults, pb.GetResultsRequest(campaign_id=ident, page_token=text,
                                                     page_size=size))
    probe.call(stub.GetCampaign, pb.GetCampaignRequest(campaign_id=ident))
    probe.call(stub.GetReport, pb.GetReportRequest(campaign_id=ident))
    probe.call(stub.ReplayTrial, pb.ReplayTrialRequest(campaign_id=ident, trial_key=text))
    probe.call(stub.StatArtifact, pb.StatArtifactRequest(sha256=text))
    probe.call(stub.StreamEvents, pb.StreamEventsRequest(campaign_id=probe.known, cursor=mark))
    probe.call(stub.StreamEventBatches, pb.StreamEventsRequest(
        campaign_id=probe.known, cursor=mark, types=[text, "progress", mark][: 1 + size % 3]))
