"""A real multi-node Ray cluster on this machine (issue 13): Ray's own test cluster, a head
with no CPUs plus two worker nodes; ``faultlab serve --ray-address`` joins it in its own
process, a campaign spreads over both nodes, and removing a node mid-campaign still ends
SUCCEEDED within the retry cap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from faultlab import Client
from faultlab.states import CampaignState
from tests.marks import slow
from tests.service.cluster import ServeProcess
from tests.service.specs import fault_spec

NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024}


@pytest.fixture
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": 80 * 1024 * 1024, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(wait=False, **NODE)
    yield cluster
    cluster.shutdown()


def _workers_of(node: Any) -> int:
    """Ray worker processes this node's raylet has started (tasks ran there)."""
    raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
    return sum("default_worker" in " ".join(p.cmdline()) or p.name().startswith("ray::")
               for p in raylet.children(recursive=True) if p.is_running())


def _until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def served(cluster: Any, tmp_path: Path) -> Iterator[ServeProcess]:
    served = ServeProcess(f"sqlite://{tmp_path / 'f.db'}", log=tmp_path / "serve.log",
                          extra=["--ray-address", cluster.address])
    yield served
    served.stop()


def _worker_nodes(cluster: Any) -> list[Any]:
    return [n for n in cluster.list_all_nodes() if n is not cluster.head_node]


def test_serve_joins_the_cluster_and_spreads_a_campaign(cluster: Any, served: ServeProcess) -> None:
    with Client(served.address) as c:
        status = c.submit(fault_spec(trials=48, seed=61)).wait(timeout=120)
    assert status.state is CampaignState.SUCCEEDED, status.error
    assert all(_workers_of(n) > 0 for n in _worker_nodes(cluster)), "ran on one node only"


@pytest.mark.slow
@slow
def test_losing_a_node_mid_campaign_still_succeeds(cluster: Any, served: ServeProcess) -> None:
    with Client(served.address) as c:
        job = c.submit(fault_spec(trials=120, seed=62))
        _until(lambda: job.status().trials_done > 0, 120)
        # Either node may hold the prepared context: Ray re-runs prepare to rebuild it.
        cluster.remove_node(_worker_nodes(cluster)[1], allow_graceful=False)
        status = job.wait(timeout=180)
    assert status.state is CampaignState.SUCCEEDED, status.error
    assert status.trials_done == status.trials_total == 120
