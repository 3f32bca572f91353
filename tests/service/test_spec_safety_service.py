"""Specs are data, on a served coordinator: no probe runs code, opens a server path, or stalls
the event loop.

A real ``faultlab serve`` (its own process and Ray, no ``--allow-factory``) gets every
code-execution and path probe of the issue as raw gRPC (no SDK validation in front): each is
answered PERMISSION_DENIED or INVALID_ARGUMENT with a short message, nothing it asked for
happens (the file it would create does not exist) and nothing is queued. The resource probes
(an alias bomb, a 5 MB spec, a huge ``hidden`` option) are each refused in under a second while
a thread polling GetCampaign on an existing campaign keeps answering (95 % of polls within 100 ms).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from faultlab import Client
from faultlab.errors import PermissionDeniedError
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc
from tests.service.cluster import ServeProcess
from tests.service.specs import fault_spec

PROBE_SECONDS = 1.0
"""Longest a refused probe may take, end to end."""
POLL_SECONDS = 0.1
"""Longest a concurrent GetCampaign may take while the probes run."""
MAX_DETAILS = 500
"""Longest error message a probe may get back."""
LOL = ", ".join(['"lol"'] * 9)


def alias_bomb(levels: int = 9) -> str:
    """The billion laughs in under 600 bytes (9**9 strings expanded), in ``dataset.options``."""
    lines = [f"l0: &l0 [{LOL}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "kind: faults\ndataset:\n  options:\n" + "\n".join(
        "    " + line for line in lines) + "\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``faultlab serve`` on SQLite, with no factory allowlist (the operator's default)."""
    home = tmp_path_factory.mktemp("served")
    server = ServeProcess(f"sqlite://{home / 'faultlab.db'}", log=home / "serve.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def existing(served: ServeProcess) -> str:
    """A campaign the concurrent GetCampaign reads."""
    with Client(served.address, timeout=120) as client:
        return client.submit(fault_spec(trials=8, name="safety-existing")).id


@pytest.fixture(scope="module")
def stub(served: ServeProcess) -> Iterator[pb_grpc.FaultlabStub]:
    with grpc.insecure_channel(
        served.address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        yield pb_grpc.FaultlabStub(channel)


def _submit(stub: pb_grpc.FaultlabStub, spec: str | dict[str, Any]) -> tuple[grpc.RpcError, float]:
    """Submits raw spec text (no SDK validation); the refusal and how long it took."""
    text = spec if isinstance(spec, str) else json.dumps(spec)
    start = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        stub.SubmitCampaign(pb.SubmitCampaignRequest(spec=text), timeout=30)
    return info.value, time.perf_counter() - start


def _check_short(err: grpc.RpcError) -> str:
    details = err.details() or ""
    assert len(details) < MAX_DETAILS, details[:MAX_DETAILS]
    assert "Traceback" not in details and 'File "' not in details, details
    return details


def _with_model(**model: Any) -> dict[str, Any]:
    spec = fault_spec(trials=8)
    spec["model"] = model
    return spec


def _with_dataset(**dataset: Any) -> dict[str, Any]:
    spec = fault_spec(trials=8)
    spec["dataset"] = dataset
    return spec


def _factory_probes(pwned: Path) -> list[tuple[str, dict[str, Any]]]:
    touch = f"touch {pwned}"
    return [
        ("subprocess:getoutput", _with_model(name="custom", factory="subprocess:getoutput",
                                             options={"cmd": touch}, weights="random")),
        ("os:system", _with_model(name="custom", factory="os:system",
                                  options={"command": touch}, weights="random")),
        ("subprocess:run", _with_model(name="custom", factory="subprocess:run",
                                       options={"args": ["touch", str(pwned)]},
                                       weights="random")),
        ("dataset subprocess:getoutput", _with_dataset(name="custom",
                                                       factory="subprocess:getoutput",
                                                       options={"cmd": touch})),
    ]


@pytest.mark.parametrize("index", range(4), ids=["getoutput", "os.system", "run", "dataset"])
def test_factory_probes_are_permission_denied(
    stub: pb_grpc.FaultlabStub, tmp_path: Path, index: int
) -> None:
    pwned = tmp_path / "pwned"
    name, spec = _factory_probes(pwned)[index]
    err, _ = _submit(stub, spec)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (name, err.details())
    details = _check_short(err)
    assert "--allow-factory" in details, details
    time.sleep(0.5)  # a command started in the background would have run by now
    assert not pwned.exists(), f"{name} ran on the coordinator"


def test_sdk_sees_permission_denied(served: ServeProcess, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    with Client(served.address) as client, pytest.raises(PermissionDeniedError) as info:
        client.submit(_factory_probes(pwned)[0][1])
    assert "--allow-factory" in str(info.value)
    assert not pwned.exists()


def test_spec_text_naming_a_server_file_is_not_read(
    stub: pb_grpc.FaultlabStub, tmp_path: Path
) -> None:
    secret = tmp_path / "secret-spec.yaml"
    secret.write_text(json.dumps({**fault_spec(trials=8), "name": "SECRET-CONTENT-42"}))
    err, _ = _submit(stub, str(secret))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    details = _check_short(err)
    assert "SECRET-CONTENT-42" not in details and "digits_cnn" not in details


@pytest.mark.parametrize(
    "spec",
    [
        _with_model(name="exported", file="/etc/passwd"),
        _with_model(name="pyg:GCN", file="/etc/passwd"),
        _with_model(name="pyg:GCN", file="weights.pt"),
        _with_dataset(name="tensors", file="/etc/passwd"),
    ],
    ids=["exported", "pyg-absolute", "pyg-relative", "tensors"],
)
def test_server_paths_in_a_spec_are_refused(
    stub: pb_grpc.FaultlabStub, spec: dict[str, Any]
) -> None:
    err, _ = _submit(stub, spec)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    details = _check_short(err)
    assert "file" in details and "sha256" in details, details
    assert "root:" not in details


class _Poller(threading.Thread):
    """Calls GetCampaign back to back on its own channel, recording each latency."""

    def __init__(self, address: str, campaign_id: str) -> None:
        super().__init__(daemon=True)
        self.address, self.campaign_id = address, campaign_id
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            get = pb_grpc.FaultlabStub(channel).GetCampaign
            request = pb.GetCampaignRequest(campaign_id=self.campaign_id)
            get(request, timeout=10)  # connected and warm before measuring
            while not self.done.is_set():
                start = time.perf_counter()
                try:
                    get(request, timeout=5)
                except grpc.RpcError as exc:
                    self.errors.append(str(exc.code()))
                self.latencies.append(time.perf_counter() - start)
                time.sleep(0.005)


RESOURCE_PROBES = [
    ("alias bomb", alias_bomb(), grpc.StatusCode.INVALID_ARGUMENT),
    ("5 MB spec", json.dumps({**fault_spec(trials=8), "name": "x" * (5 * 2**20)}),
     grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("hidden 5000000", json.dumps({**fault_spec(trials=8), "model": {
        "name": "gcn", "options": {"hidden": 5_000_000}}, "dataset": {"name": "karate"},
        "faults": {"fault_model": "bitflip", "target": "weight", "trials": 8}}),
     grpc.StatusCode.INVALID_ARGUMENT),
]


def test_resource_probes_fail_fast_and_the_loop_keeps_answering(
    served: ServeProcess, stub: pb_grpc.FaultlabStub, existing: str
) -> None:
    assert len(alias_bomb()) < 600  # a few hundred bytes, 9**9 strings once expanded
    poller = _Poller(served.address, existing)
    poller.start()
    time.sleep(0.3)
    outcomes: dict[str, tuple[grpc.StatusCode, float, str]] = {}
    try:
        for name, text, _ in RESOURCE_PROBES:
            start = time.perf_counter()
            try:
                stub.SubmitCampaign(pb.SubmitCampaignRequest(spec=text), timeout=30)
                outcomes[name] = (grpc.StatusCode.OK, time.perf_counter() - start, "accepted")
            except grpc.RpcError as err:
                outcomes[name] = (err.code(), time.perf_counter() - start, _check_short(err))
            time.sleep(0.2)
    finally:
        poller.done.set()
        poller.join(timeout=10)
    for name, _, code in RESOURCE_PROBES:
        got, seconds, details = outcomes[name]
        assert got == code, f"{name}: {got.name} ({details}), expected {code.name}"
        assert seconds < PROBE_SECONDS, f"{name} took {seconds:.2f} s"
    assert "x" * 100 not in outcomes["5 MB spec"][2]
    assert not poller.errors, poller.errors
    assert len(poller.latencies) > 20
    # A blocked event loop shows as a long stall for as long as a probe runs (seconds); on a
    # loaded 2-core CI machine the OS scheduler alone can delay a single poll past 100 ms, so
    # the bound is on the 95th percentile, and the worst poll must still be far below a probe.
    latencies = sorted(poller.latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    assert p95 < POLL_SECONDS, f"GetCampaign p95 was {p95 * 1000:.0f} ms during probes"
    assert latencies[-1] < 5 * POLL_SECONDS, f"a GetCampaign took {latencies[-1]:.2f} s"


def test_refused_probes_queue_nothing(served: ServeProcess, existing: str) -> None:
    with Client(served.address) as client:
        assert [c.id for c in client.list()] == [existing]
