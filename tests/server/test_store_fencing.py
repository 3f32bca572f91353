"""Store contract, continued: the coordinator lease and its fencing, the atomic per-tenant
limit and the terminal-state fence on trial writes (both backends, see ``conftest.py``)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pytest

from faultlab.errors import ResourceExhaustedError
from faultlab.events import LogEvent
from faultlab.server.store import ResultItem, Store
from faultlab.server.store.base import LeaseLostError
from faultlab.states import CampaignState, TrialState
from tests.server.test_artifacts_contract import digest, put
from tests.server.test_store_contract import campaign, events, keyed, result, with_trials

StoreFactory = Callable[[], Store]
ACTIVE = [CampaignState.QUEUED, CampaignState.RUNNING]


def test_one_lease_holder_at_a_time(open_backend: StoreFactory) -> None:
    first, second = open_backend(), open_backend()
    token = first.acquire_lease("a", 10.0)
    assert token > 0 and first.fence_token == token
    assert second.acquire_lease("b", 10.0) == 0 and second.fence_token == 0
    lease = second.lease()
    assert lease is not None and (lease.holder, lease.token) == ("a", token)
    assert lease.expires > time.time() + 5
    assert first.renew_lease("a", token, 10.0)
    assert first.acquire_lease("a", 10.0) == token + 1  # the holder itself may re-take it


def test_a_lapsed_lease_is_taken_and_renewed_only_by_its_token(
    open_backend: StoreFactory,
) -> None:
    first, second = open_backend(), open_backend()
    token = first.acquire_lease("a", 0.2)
    time.sleep(0.35)
    assert second.lease() is None
    assert first.renew_lease("a", token, 0.2)  # nobody took it: the token still holds
    time.sleep(0.35)
    taken = second.acquire_lease("b", 10.0)
    assert taken > token
    assert not first.renew_lease("a", token, 10.0)
    second.release_lease(taken)
    assert second.lease() is None
    assert first.acquire_lease("c", 10.0) > taken


def test_every_write_of_a_stale_holder_is_fenced(open_backend: StoreFactory) -> None:
    stale, fresh = open_backend(), open_backend()
    stale.acquire_lease("a", 10.0)
    keys = with_trials(stale, 4)
    assert fresh.acquire_lease("b", 10.0, steal=True) > stale.fence_token
    writes: list[Callable[[], object]] = [
        lambda: stale.create_campaign(campaign("c2")),
        lambda: stale.transition("c1", ACTIVE, CampaignState.RUNNING),
        lambda: stale.set_meta("c1", "{}"),
        lambda: stale.add_trials("c1", 1, keyed(9)),
        lambda: stale.mark_running("c1", keys[:1]),
        lambda: stale.mark_failed("c1", keys[:1], "boom"),
        lambda: stale.reset_running("c1"),
        lambda: stale.record_results("c1", [ResultItem(keys[0], result(keys[0]))]),
        lambda: stale.append_event("c1", LogEvent("stale")),
    ]
    for write in writes:
        with pytest.raises(LeaseLostError):
            write()
    record = fresh.get_campaign("c1")
    assert record is not None and record.state is CampaignState.QUEUED
    assert record.trials_done == 0 and fresh.get_campaign("c2") is None
    assert [e.event.type for e in events(fresh, "c1")] == ["state"]
    assert fresh.record_results("c1", [ResultItem(keys[0], result(keys[0]))]) == 1


def test_a_stale_holder_stores_no_artifact(open_backend: StoreFactory) -> None:
    stale, fresh = open_backend(), open_backend()
    stale.acquire_lease("a", 10.0)
    kept = os.urandom(1000)
    put(stale, "alice", kept)  # while it holds the lease
    assert fresh.acquire_lease("b", 10.0, steal=True) > stale.fence_token
    blob = os.urandom(300_000 * 3 + 17)  # several chunks, all written before the fenced finish
    with pytest.raises(LeaseLostError):
        put(stale, "alice", blob)
    assert fresh.stat_artifact("alice", digest(blob)) is None
    assert stale.stat_artifact("alice", digest(blob)) is None
    # Nothing was counted against the quota: only the first artifact's 1000 bytes are in use.
    put(fresh, "alice", os.urandom(10), quota_bytes=1010)
    assert fresh.read_artifact("alice", digest(kept)) == kept


def test_tenant_limit_is_checked_with_the_insert(store: Store) -> None:
    store.create_campaign(campaign("c1", request_id="r1"), max_active=2)
    store.create_campaign(campaign("c2"), max_active=2)
    store.create_campaign(campaign("b1", owner="bob"), max_active=2)
    with pytest.raises(ResourceExhaustedError, match="already has 2 active"):
        store.create_campaign(campaign("c3"), max_active=2)
    again, created = store.create_campaign(campaign("c4", request_id="r1"), max_active=2)
    assert again.id == "c1" and not created  # a repeated request is not a new campaign
    store.transition("c1", ACTIVE, CampaignState.CANCELLED)
    assert store.create_campaign(campaign("c3"), max_active=2)[1]


def test_concurrent_creates_never_pass_the_limit(open_backend: StoreFactory) -> None:
    stores = [open_backend() for _ in range(4)]
    accepted: list[str] = []
    barrier = threading.Barrier(24)

    def submit(i: int) -> None:
        barrier.wait()
        try:
            stores[i % 4].create_campaign(campaign(f"c{i:02d}"), max_active=7)
            accepted.append(f"c{i:02d}")
        except ResourceExhaustedError:
            pass

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 7 and len(stores[0].active_campaigns()) == 7


def test_a_terminal_campaign_records_no_trial_or_event(store: Store) -> None:
    keys = with_trials(store, 4)
    store.record_results("c1", [ResultItem(keys[0], result(keys[0]))])
    assert store.transition("c1", ACTIVE, CampaignState.CANCELLED)
    before = [e.cursor for e in events(store, "c1")]
    assert store.record_results("c1", [ResultItem(k, result(k)) for k in keys]) == 0
    assert store.add_trials("c1", 1, keyed(7, 8)) == 0
    store.mark_running("c1", keys[1:2])
    store.mark_failed("c1", keys[2:3], "late")
    record = store.get_campaign("c1")
    assert record is not None
    assert (record.trials_done, record.trials_total, record.trials_failed) == (1, 4, 0)
    assert [e.cursor for e in events(store, "c1")] == before
    states = {row.key: row.state for row in store.trials("c1")}
    assert states[keys[1]] is TrialState.PENDING and states[keys[2]] is TrialState.PENDING
    assert store.lookup_results(keys[1:]) == {}
