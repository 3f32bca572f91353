"""The shared result cache tells no tenant what another ran (issue 13, item 9)."""

from __future__ import annotations

from faultlab import Client
from faultlab.states import CampaignState
from tests.service.specs import fault_spec


def test_cache_hits_are_visible_only_to_their_tenant(server_factory, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(sqlite_url, tokens={"ta": "alice", "tb": "bob"})
    spec = fault_spec(trials=12, seed=77)
    with Client(server.address, token="ta") as alice, Client(server.address, token="tb") as bob:
        first = alice.submit(spec).wait(timeout=300)
        assert first.state is CampaignState.SUCCEEDED and first.trials_cached == 0
        probe = bob.submit(spec)
        seen = probe.wait(timeout=300)
        assert seen.state is CampaignState.SUCCEEDED
        assert (seen.trials_done, seen.trials_cached) == (12, 0)
        logs = [e.data.get("message", "") for e in probe.events() if e.type in ("log", "state")]
        assert not any("from cache" in m and " 0 from cache" not in m for m in logs), logs
        again = alice.submit({**spec, "name": "again"}).wait(timeout=300)
        assert (again.trials_done, again.trials_cached) == (12, 12)  # her own results
