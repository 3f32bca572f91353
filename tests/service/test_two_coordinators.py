"""One coordinator per store (prefix): a second one refuses to start while the first holds
the lease, and a coordinator whose lease was taken writes nothing more (fenced), while the
new holder resumes its campaign to a consistent end."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from faultlab import CampaignState, Client
from faultlab.errors import FailedPreconditionError
from faultlab.server.config import CoordinatorConfig
from faultlab.server.store import open_store
from tests.service.specs import fault_spec


def test_two_coordinators_on_one_store(server_factory: Any, store_url: str) -> None:
    config = CoordinatorConfig(num_cpus=2, lease_ttl_s=1.5, lease_wait_s=0.5)
    first = server_factory(store_url, config=config)
    with pytest.raises(FailedPreconditionError, match="owned by coordinator"):
        server_factory(store_url, config=config)

    with Client(first.address, timeout=60) as client:
        job = client.submit(fault_spec(trials=400, seed=41, size=120))
        while job.status().trials_done < 20:
            time.sleep(0.02)
        intruder = open_store(store_url)  # a coordinator that took the lease over
        token = intruder.acquire_lease("intruder", 30.0, steal=True)
        time.sleep(1.5)  # the first coordinator's renewal notices within ttl / 3
        frozen = intruder.get_campaign(job.id)
        assert frozen is not None and frozen.state is CampaignState.RUNNING
        with pytest.raises(FailedPreconditionError, match="lease"):
            job.cancel()  # the stale coordinator's write is fenced
        time.sleep(0.5)
        still = intruder.get_campaign(job.id)
        assert still is not None and still.trials_done == frozen.trials_done
        intruder.release_lease(token)
        intruder.close()

    second = server_factory(store_url, config=config)  # takes the released lease, resumes
    with Client(second.address, timeout=60) as client:
        status = client.get(job.id).wait(timeout=120)
        assert status.trials_done == status.trials_total == 400
        events = list(client.get(job.id).events())
    trials = Counter(e.data["key"] for e in events if e.type == "trial")
    assert len(trials) == 400 and set(trials.values()) == {1}
    states = [e.data["state"] for e in events if e.type == "state"]
    assert states == ["QUEUED", "RUNNING", "SUCCEEDED"]
