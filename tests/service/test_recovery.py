"""A coordinator killed with kill -9 mid-campaign resumes it: nothing lost, nothing doubled."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

from faultlab import CampaignState, Client
from faultlab.server.store import open_store
from faultlab.states import TrialState
from tests.service.cluster import ServeProcess
from tests.service.specs import fault_spec


def test_kill9_recovery(tmp_path: Path) -> None:
    store_url = f"sqlite://{tmp_path / 'recovery.db'}"
    first = ServeProcess(store_url, log=tmp_path / "serve1.log")
    try:
        with Client(first.address, timeout=60) as client:
            job = client.submit(fault_spec(trials=600, seed=31, size=120))
            deadline = time.monotonic() + 120
            while job.status().trials_done < 60:
                assert time.monotonic() < deadline, "no progress before the kill"
                time.sleep(0.05)
    finally:
        first.kill9()

    store = open_store(store_url)
    done_before = {r.key for r in store.trials(job.id, [TrialState.DONE])}
    record = store.get_campaign(job.id)
    assert record is not None and record.state is CampaignState.RUNNING
    assert 0 < len(done_before) < 600
    store.close()

    second = ServeProcess(store_url, port=first.port, log=tmp_path / "serve2.log")
    try:
        with Client(second.address, timeout=60) as client:
            status = client.get(job.id).wait(timeout=240)
            assert status.state is CampaignState.SUCCEEDED
            assert status.trials_done == status.trials_total == 600
            events = list(client.get(job.id).events())
    finally:
        second.stop()

    trial_events = Counter(e.data["key"] for e in events if e.type == "trial")
    assert len(trial_events) == 600 and set(trial_events.values()) == {1}
    logs = [e.data["message"] for e in events if e.type == "log"]
    assert any("coordinator restarted" in m for m in logs)
    matches = (re.search(r"computed (\d+) trials", line) for line in logs)
    computed = [int(m.group(1)) for m in matches if m]
    # Only the trials missing at the kill were computed after the restart.
    assert computed[-1] == 600 - len(done_before)
