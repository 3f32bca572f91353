"""Cancel is final: cancels raced against a campaign's start and its end, looped, on both
stores. Each campaign ends CANCELLED (or SUCCEEDED when it finished first), never FAILED,
with one terminal state event and no trial or progress event after it."""

from __future__ import annotations

import os
import time

import pytest

from faultlab import CampaignState, Client
from tests.marks import skip_unless_slow
from tests.service.specs import fault_spec

SLOW = bool(os.environ.get("FAULTLAB_SLOW"))
ITERATIONS = {"after_submit": 15 if SLOW else 6, "near_completion": 15 if SLOW else 3}
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def _check_final(client: Client, campaign_id: str) -> str:
    job = client.get(campaign_id)
    status = job.wait(timeout=120, raise_on_failure=False)
    events = list(job.events())
    terminal = [i for i, e in enumerate(events) if e.type == "state"
                and e.data["state"] in TERMINAL]
    assert len(terminal) == 1, [e.data for e in events if e.type == "state"]
    after = [e.type for e in events[terminal[0] + 1:]]
    assert "trial" not in after and "progress" not in after, after
    assert events[terminal[0]].data["state"] == status.state.value
    keys = [e.data["key"] for e in events if e.type == "trial"]
    assert len(keys) == len(set(keys)) == status.trials_done
    assert status.state is not CampaignState.FAILED, status.error
    return status.state.value


@pytest.mark.parametrize("moment", ["after_submit", "near_completion"])
def test_cancel_races(server_factory, store_url: str, moment: str) -> None:  # type: ignore[no-untyped-def]
    if moment == "near_completion" and store_url.startswith("sqlite"):
        skip_unless_slow()
    server = server_factory(store_url)
    ends: list[str] = []
    with Client(server.address, timeout=60) as client:
        for i in range(ITERATIONS[moment]):
            job = client.submit(fault_spec(trials=24, seed=500 + i, name=f"race-{i}"))
            if moment == "near_completion":
                deadline = time.monotonic() + 60
                while job.status().trials_done < 16 + i % 8 and time.monotonic() < deadline:
                    time.sleep(0.005)
            else:
                time.sleep(0.02 * (i % 4))  # during prepare, or just before it
            job.cancel()
            ends.append(_check_final(client, job.id))
    assert "CANCELLED" in ends
