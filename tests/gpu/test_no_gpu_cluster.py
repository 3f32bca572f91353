"""Device requests on a cluster without GPUs (runs everywhere): ``num_gpus: 1`` fails fast with
a clear error instead of queueing forever; ``auto`` runs on the CPU."""

from __future__ import annotations

import time

import pytest

from faultlab import CampaignState, Client
from tests.service.specs import fault_spec


@pytest.fixture
def client(server_factory, sqlite_url):  # type: ignore[no-untyped-def]
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=60) as c:
        yield c


def test_gpu_request_without_gpus_fails_fast(client: Client) -> None:
    import ray

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this cluster has GPUs")
    spec = fault_spec(trials=8)
    spec["execution"]["num_gpus"] = 1
    start = time.monotonic()
    status = client.submit(spec).wait(timeout=60, raise_on_failure=False)
    assert status.state is CampaignState.FAILED
    assert "execution.num_gpus" in status.error and "has 0" in status.error
    assert time.monotonic() - start < 30


def test_auto_runs_on_the_cpu(client: Client) -> None:
    spec = fault_spec(trials=8)
    spec["execution"]["num_gpus"] = "auto"
    status = client.submit(spec).wait(timeout=120, raise_on_failure=False)
    assert status.state is CampaignState.SUCCEEDED, status.error
