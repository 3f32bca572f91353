"""The store contract (``faultlab.server.store.base``), checked on SQLite and on a real Redis.

Every test taking ``store`` / ``open_backend`` runs once per backend (see ``conftest.py``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from faultlab.errors import ArgumentError, SpecError, UnavailableError
from faultlab.events import LogEvent, ProgressEvent, StateEvent, TrialEvent
from faultlab.server.store import CampaignRecord, ResultItem, Store, StoredEvent, open_store
from faultlab.server.store.redis import RedisStore
from faultlab.server.store.sqlite import SqliteStore
from faultlab.states import CampaignState, TrialState

QUEUED, RUNNING = CampaignState.QUEUED, CampaignState.RUNNING
StoreFactory = Callable[[], Store]
SUCCEEDED, FAILED, CANCELLED = (
    CampaignState.SUCCEEDED,
    CampaignState.FAILED,
    CampaignState.CANCELLED,
)


def campaign(
    campaign_id: str = "c1", owner: str = "alice", request_id: str = "", created_at: float = 0.0
) -> CampaignRecord:
    return CampaignRecord(
        id=campaign_id,
        owner=owner,
        kind="faults",
        name=f"campaign {campaign_id}",
        spec_json='{"kind": "faults"}',
        spec_hash="sha256:spec",
        seed=7,
        code_version="0.1.0",
        request_id=request_id,
        created_at=created_at,
    )


def trial(i: int) -> dict[str, Any]:
    return {"layer": f"conv{i % 3}", "flat_index": i, "bit": 30, "scale": 0.1 + i / 3}


def keyed(*indices: int) -> list[tuple[str, dict[str, Any]]]:
    return [(f"key{i:04d}", trial(i)) for i in indices]


def result(key: str) -> dict[str, Any]:
    return {"key": key, "sdc": key.endswith("3"), "margin": 1 / 7, "scores": [0.25, -1e-300]}


def events(store: Store, campaign_id: str, kind: str | None = None) -> list[StoredEvent]:
    found = store.read_events(campaign_id, limit=100_000)
    return [e for e in found if kind is None or e.event.type == kind]


def with_trials(store: Store, n: int, campaign_id: str = "c1") -> list[str]:
    store.create_campaign(campaign(campaign_id))
    pairs = keyed(*range(n))
    store.add_trials(campaign_id, 0, pairs)
    return [key for key, _ in pairs]


def counters(store: Store, campaign_id: str = "c1") -> tuple[int, int, int, int]:
    record = store.get_campaign(campaign_id)
    assert record is not None
    return record.trials_total, record.trials_done, record.trials_cached, record.trials_failed


# --- campaigns -----------------------------------------------------------------------
def test_create_and_get(store: Store) -> None:
    before = time.time()
    created, is_new = store.create_campaign(campaign().with_(state=RUNNING, trials_done=9))
    assert is_new
    assert created.state is QUEUED and created.trials_done == 0  # the store owns both
    assert before <= created.created_at <= time.time()
    assert store.get_campaign("c1") == created
    assert store.get_campaign("nope") is None
    [event] = events(store, "c1")
    assert event.event == StateEvent(QUEUED, "")
    assert event.event.to_dict() == {"type": "state", "state": "QUEUED", "message": ""}


def test_create_is_idempotent_per_owner_and_request_id(store: Store) -> None:
    first, is_new = store.create_campaign(campaign("c1", "alice", request_id="r1"))
    assert is_new
    again, is_new = store.create_campaign(campaign("c2", "alice", request_id="r1"))
    assert (again, is_new) == (first, False)
    assert store.get_campaign("c2") is None
    assert len(events(store, "c1")) == 1

    other_tenant, is_new = store.create_campaign(campaign("c3", "bob", request_id="r1"))
    assert is_new and other_tenant.id == "c3"
    # Without a request id every submission is new; the same campaign id is never replaced.
    assert store.create_campaign(campaign("c4", "alice"))[1]
    assert store.create_campaign(campaign("c5", "alice"))[1]
    assert store.create_campaign(campaign("c4", "bob"))[0].owner == "alice"


def test_list_newest_first_paginated_and_filtered_by_owner(store: Store) -> None:
    owners = ["alice", "bob", "alice", "bob", "alice"]
    for i, owner in enumerate(owners):
        store.create_campaign(campaign(f"c{i}", owner, created_at=1000.0 + i))
    store.create_campaign(campaign("c4b", "bob", created_at=1004.0))  # tie: id breaks it

    ids = [c.id for c in store.list_campaigns(None, limit=10)]
    assert ids == ["c4b", "c4", "c3", "c2", "c1", "c0"]
    assert [c.id for c in store.list_campaigns(None, limit=2, offset=2)] == ["c3", "c2"]
    assert [c.id for c in store.list_campaigns("alice", limit=10)] == ["c4", "c2", "c0"]
    assert [c.id for c in store.list_campaigns("alice", limit=1, offset=1)] == ["c2"]
    assert store.list_campaigns(None, limit=10, offset=6) == []
    assert store.list_campaigns(None, limit=0) == []
    assert store.list_campaigns("carol", limit=10) == []


def test_active_campaigns_oldest_first(store: Store) -> None:
    for i in range(4):
        store.create_campaign(campaign(f"c{i}", created_at=1000.0 - i))
    store.transition("c1", [QUEUED], RUNNING)
    store.transition("c2", [QUEUED], CANCELLED)
    assert [c.id for c in store.active_campaigns()] == ["c3", "c1", "c0"]


def test_transition_is_compare_and_set(store: Store) -> None:
    created, _ = store.create_campaign(campaign())
    assert store.transition("c1", [QUEUED], RUNNING, message="started")
    assert not store.transition("c1", [QUEUED], RUNNING)
    assert store.transition("c1", [QUEUED, RUNNING], FAILED, error="boom", message="worker died")
    record = store.get_campaign("c1")
    assert record is not None
    assert (record.state, record.error) == (FAILED, "boom")
    assert record.updated_at >= created.updated_at

    # Terminal states never change, whatever the caller expects.
    assert not store.transition("c1", list(CampaignState), SUCCEEDED)
    assert not store.transition("c1", [FAILED], QUEUED)
    assert not store.transition("c1", [], RUNNING)
    assert not store.transition("unknown", [QUEUED], RUNNING)
    record = store.get_campaign("c1")
    assert record is not None and record.state is FAILED

    assert [e.event.to_dict() for e in events(store, "c1")] == [
        {"type": "state", "state": "QUEUED", "message": ""},
        {"type": "state", "state": "RUNNING", "message": "started"},
        {"type": "state", "state": "FAILED", "message": "worker died"},
    ]


def test_set_meta(store: Store) -> None:
    store.create_campaign(campaign())
    store.set_meta("c1", '{"model_digest": "abc"}')
    store.set_meta("unknown", "{}")
    record = store.get_campaign("c1")
    assert record is not None and record.meta_json == '{"model_digest": "abc"}'
    assert store.get_campaign("unknown") is None


# --- trials --------------------------------------------------------------------------
def test_add_trials_is_idempotent_and_keeps_plan_order_across_rounds(store: Store) -> None:
    store.create_campaign(campaign())
    assert store.add_trials("c1", 0, keyed(0, 1, 2, 1)) == 3
    assert store.add_trials("c1", 0, keyed(0, 1)) == 0
    assert store.add_trials("c1", 1, keyed(2, 3, 4)) == 2
    assert store.add_trials("c1", 2, []) == 0
    assert store.add_trials("unknown", 0, keyed(0)) == 0

    rows = store.trials("c1")
    assert [r.key for r in rows] == [k for k, _ in keyed(0, 1, 2, 3, 4)]
    assert [r.index for r in rows] == [0, 1, 2, 3, 4]
    assert [r.round for r in rows] == [0, 0, 0, 1, 1]
    assert {(r.state, r.attempts, r.error) for r in rows} == {(TrialState.PENDING, 0, "")}
    assert [r.trial for r in rows] == [trial(i) for i in range(5)]
    assert counters(store) == (5, 0, 0, 0)
    assert store.trials("unknown") == []


def test_trial_states_attempts_and_failures(store: Store) -> None:
    a, b, c, d = with_trials(store, 4)
    store.mark_running("c1", [a, b, c])
    store.mark_running("c1", [b, "not-a-trial"])
    assert {r.key: r.attempts for r in store.trials("c1")} == {a: 1, b: 2, c: 1, d: 0}
    assert [r.key for r in store.trials("c1", [TrialState.RUNNING])] == [a, b, c]

    store.record_results("c1", [ResultItem(a, result(a))])
    store.mark_running("c1", [a])
    store.mark_failed("c1", [a, b], "out of memory")
    store.mark_failed("c1", [b], "out of memory again")
    rows = {r.key: r for r in store.trials("c1")}
    assert (rows[a].state, rows[a].attempts) == (TrialState.DONE, 1)  # DONE is final
    assert (rows[b].state, rows[b].error) == (TrialState.FAILED, "out of memory again")
    assert counters(store) == (4, 1, 0, 1)

    assert store.reset_running("c1") == 1  # c; failed and done trials stay as they are
    assert store.reset_running("c1") == 0
    assert [(r.key, r.attempts) for r in store.trials("c1", [TrialState.PENDING])] == [
        (c, 1),
        (d, 0),
    ]

    store.mark_running("c1", [b])  # a retried failure is no longer counted as failed
    assert counters(store) == (4, 1, 0, 0)
    store.mark_failed("c1", [b, c], "bad input")
    assert counters(store) == (4, 1, 0, 2)
    store.record_results("c1", [ResultItem(c, result(c))])
    assert counters(store) == (4, 2, 0, 1)
    assert store.trials("c1", [TrialState.FAILED, TrialState.PENDING])[0].key == b


# --- results -------------------------------------------------------------------------
def test_record_results_is_atomic_and_idempotent(store: Store) -> None:
    a, b, c = with_trials(store, 3)
    assert store.record_results("c1", [ResultItem(a, result(a)), ResultItem(a, result(a))]) == 1
    assert store.record_results("c1", [ResultItem(a, result(a))]) == 0
    assert store.record_results("c1", [ResultItem("not-a-trial", result("x"))]) == 0
    assert store.record_results("unknown", [ResultItem(b, result(b))]) == 0
    assert (
        store.record_results("c1", [ResultItem(b, result(b), cached=True), ResultItem(a, {})]) == 1
    )
    assert store.record_results("c1", []) == 0

    assert counters(store) == (3, 2, 1, 0)
    rows = {r.key: r for r in store.trials("c1")}
    assert [rows[k].state for k in (a, b, c)] == [
        TrialState.DONE,
        TrialState.DONE,
        TrialState.PENDING,
    ]
    assert rows[a].attempts == 1  # at least one attempt, even if never marked running
    assert store.lookup_results([a, b, c, a]) == {a: result(a), b: result(b)}
    assert store.lookup_results([]) == {}

    trial_events = events(store, "c1", "trial")
    assert [e.event.to_dict() for e in trial_events] == [
        {"type": "trial", "key": a, "trial": trial(0), "result": result(a), "cached": False},
        {"type": "trial", "key": b, "trial": trial(1), "result": result(b), "cached": True},
    ]
    assert [e.event for e in trial_events] == [
        TrialEvent(a, trial(0), result(a), cached=False),
        TrialEvent(b, trial(1), result(b), cached=True),
    ]
    assert [e.event.to_dict() for e in events(store, "c1", "progress")] == [
        {"type": "progress", "done": 1, "total": 3, "cached": 0, "failed": 0},
        {"type": "progress", "done": 2, "total": 3, "cached": 1, "failed": 0},
    ]


def test_results_are_shared_across_campaigns(store: Store) -> None:
    [key] = with_trials(store, 1, "c1")
    store.record_results("c1", [ResultItem(key, result(key))])
    store.create_campaign(campaign("c2", owner="bob"))
    store.add_trials("c2", 0, keyed(0))

    cached = store.lookup_results([key])
    assert cached == {key: result(key)}
    # First write wins: a later, different payload for the same key never replaces it.
    assert store.record_results("c2", [ResultItem(key, {"other": True}, cached=True)]) == 1
    [(row, stored)] = store.campaign_results("c2")
    assert (row.key, stored) == (key, result(key))
    assert counters(store, "c2") == (1, 1, 1, 0)
    assert counters(store, "c1") == (1, 1, 0, 0)


def test_campaign_results_are_paginated_in_plan_order(store: Store) -> None:
    keys = with_trials(store, 12)
    done = keys[:5] + keys[6:11]  # keys[5] and keys[11] stay pending
    shuffled = random.Random(3).sample(done, len(done))
    store.record_results("c1", [ResultItem(k, result(k)) for k in shuffled[:4]])
    store.record_results("c1", [ResultItem(k, result(k)) for k in shuffled[4:]])

    everything = store.campaign_results("c1")
    assert [row.key for row, _ in everything] == done
    assert all(res == result(row.key) for row, res in everything)
    pages = [store.campaign_results("c1", offset, 3) for offset in range(0, 12, 3)]
    assert [row.key for page in pages for row, _ in page] == done
    assert store.campaign_results("c1", 9, None)[0][0].key == done[9]
    assert store.campaign_results("c1", 0, 0) == []
    assert store.campaign_results("unknown") == []


def test_trial_by_key_and_done_keys(store: Store) -> None:
    keys = with_trials(store, 5)
    assert store.done_keys("c1") == set()
    store.mark_running("c1", keys[:2])
    store.record_results("c1", [ResultItem(k, result(k)) for k in (keys[1], keys[3])])
    assert store.done_keys("c1") == {keys[1], keys[3]}
    assert store.done_keys("unknown") == set()
    row = store.trial("c1", keys[1])
    assert row is not None
    assert (row.key, row.index, row.round, row.state, row.attempts, row.trial) == (
        keys[1], 1, 0, TrialState.DONE, 1, trial(1)
    )
    pending = store.trial("c1", keys[4])
    assert pending is not None and (pending.state, pending.attempts) == (TrialState.PENDING, 0)
    assert store.trial("c1", "no-such-key") is None
    assert store.trial("unknown", keys[1]) is None
    assert store.trial("c1", keys[0]) == {r.key: r for r in store.trials("c1")}[keys[0]]


def test_campaign_results_page_reads_no_full_trial_list(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = with_trials(store, 8)
    store.record_results("c1", [ResultItem(k, result(k)) for k in reversed(keys[2:7])])

    def scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("campaign_results must not scan every trial of the campaign")

    monkeypatch.setattr(store, "trials", scan)
    [(row, res)] = store.campaign_results("c1", 1, 1)
    assert (row.key, row.index, row.state, res) == (keys[3], 3, TrialState.DONE, result(keys[3]))
    assert [r.key for r, _ in store.campaign_results("c1", 3)] == keys[5:7]


def test_result_texts_page_by_plan_index_as_stored_text(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = with_trials(store, 12)
    done = keys[:5] + keys[6:11]  # keys[5] and keys[11] stay pending
    store.mark_running("c1", done[:2])
    store.record_results("c1", [ResultItem(k, result(k)) for k in reversed(done)])

    def scan(*args: object, **kwargs: object) -> None:
        raise AssertionError("result_texts must read only its page")

    monkeypatch.setattr(store, "trials", scan)
    monkeypatch.setattr(store, "campaign_results", scan)
    pages, start = [], 0
    while page := store.result_texts("c1", start, 3):  # each page starts after the last
        pages.append(page)
        start = page[-1].index + 1
    rows = [row for page in pages for row in page]
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [row.key for row in rows] == done
    assert [row.index for row in rows] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert [json.loads(row.trial_json) for row in rows] == [trial(r.index) for r in rows]
    assert [json.loads(row.result_json) for row in rows] == [result(k) for k in done]
    assert [row.attempts for row in rows] == [1] * len(done)
    assert [r.key for r in store.result_texts("c1", 5, 2)] == [keys[6], keys[7]]  # 5: pending
    assert store.result_texts("c1", 11) == [] and store.result_texts("c1", 0, 0) == []
    assert store.result_texts("unknown") == []


# --- events --------------------------------------------------------------------------
def test_every_event_type_round_trips_through_the_store(store: Store) -> None:
    store.create_campaign(campaign())
    written = [
        StateEvent(RUNNING, "started"),
        ProgressEvent(done=3, total=10, cached=1, failed=2),
        TrialEvent("k1", trial(1), result("k1"), cached=True),
        LogEvent("shard retried", level="warning"),
    ]
    for event in written:
        store.append_event("c1", event)
    assert [e.event for e in events(store, "c1")][1:] == written


def test_events_after_a_cursor_resume_without_gaps_or_duplicates(store: Store) -> None:
    store.create_campaign(campaign("c1"))
    store.create_campaign(campaign("c2"))
    for i in range(10):
        store.append_event("c1", LogEvent(str(i)))
        store.append_event("c2", LogEvent(str(-i)))

    seen: list[int] = []
    cursor = ""
    while page := store.read_events("c1", after=cursor, limit=3):
        assert len(page) <= 3
        seen += [int(e.event.message) if isinstance(e.event, LogEvent) else -1 for e in page]
        cursor = page[-1].cursor
    assert seen == [-1, *range(10)]  # the creation's state event first
    assert store.read_events("c1", after=cursor) == []

    last = store.append_event("c1", LogEvent("10", level="warning"))
    [event] = store.read_events("c1", after=cursor)
    assert (event.cursor, event.event) == (last, LogEvent("10", level="warning"))
    assert event.time == pytest.approx(time.time(), abs=5)
    with pytest.raises(ArgumentError) as bad:
        store.read_events("c1", after="not a cursor")
    assert not isinstance(bad.value, SpecError)
    assert (bad.value.code, bad.value.argument) == ("INVALID_ARGUMENT", "cursor")


def test_read_events_waits_for_an_event_from_another_thread(store: Store) -> None:
    store.create_campaign(campaign())
    [created] = store.read_events("c1")
    timer = threading.Timer(0.3, store.append_event, ("c1", LogEvent("1")))
    started = time.monotonic()
    timer.start()
    try:
        page = store.read_events("c1", after=created.cursor, timeout=5.0)
    finally:
        timer.join()
    elapsed = time.monotonic() - started
    assert [e.event for e in page] == [LogEvent("1")]
    assert 0.2 <= elapsed < 2.0


def test_read_events_times_out_empty(store: Store) -> None:
    store.create_campaign(campaign())
    [created] = store.read_events("c1")
    started = time.monotonic()
    assert store.read_events("c1", after=created.cursor, timeout=0.3) == []
    assert 0.25 <= time.monotonic() - started < 2.0
    started = time.monotonic()
    assert store.read_events("c1", after=created.cursor) == []
    assert time.monotonic() - started < 0.2


# --- concurrency, restarts and crashes -----------------------------------------------
def test_concurrent_recording_of_overlapping_keys(open_backend: StoreFactory) -> None:
    store = open_backend()
    keys = with_trials(store, 60)
    # Two threads share one store object, two more each open their own connection.
    stores = [store, store, open_backend(), open_backend()]
    recorded = [0] * len(stores)

    def record(worker: int) -> None:
        order = random.Random(worker).sample(keys, len(keys))
        for i in range(0, len(order), 4):
            batch = [ResultItem(k, result(k)) for k in order[i : i + 4]]
            recorded[worker] += stores[worker].record_results("c1", batch)

    threads = [threading.Thread(target=record, args=(w,)) for w in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(recorded) == len(keys)
    assert sorted(e.event.to_dict()["key"] for e in events(store, "c1", "trial")) == keys
    assert counters(store) == (60, 60, 0, 0)
    assert events(store, "c1", "progress")[-1].event.to_dict()["done"] == 60


def test_reopened_store_sees_everything(open_backend: StoreFactory) -> None:
    first = open_backend()
    keys = with_trials(first, 3)
    first.transition("c1", [QUEUED], RUNNING)
    first.mark_running("c1", keys)
    first.record_results("c1", [ResultItem(keys[0], result(keys[0]))])
    record = first.get_campaign("c1")
    before = events(first, "c1")
    first.close()

    second = open_backend()
    assert second.get_campaign("c1") == record
    assert [r.state for r in second.trials("c1")] == [
        TrialState.DONE,
        TrialState.RUNNING,
        TrialState.RUNNING,
    ]
    assert second.reset_running("c1") == 2
    assert second.lookup_results(keys) == {keys[0]: result(keys[0])}
    assert events(second, "c1") == before
    cursor = second.append_event("c1", LogEvent("after reopening"))
    assert [e.cursor for e in second.read_events("c1", after=before[-1].cursor)] == [cursor]


_WRITER = """
import sys
from faultlab.server.store import ResultItem, open_store

store = open_store(sys.argv[1])
keys = [row.key for row in store.trials("c1")]
print("ready", flush=True)
for i in range(0, len(keys), 2):
    store.record_results("c1", [ResultItem(k, {"value": k}) for k in keys[i : i + 2]])
"""


def test_kill_9_mid_write_leaves_a_consistent_store(
    open_backend: StoreFactory, store_url: str
) -> None:
    store = open_backend()
    keys = with_trials(store, 20_000)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    deadline = time.monotonic() + 20
    while counters(store)[1] < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL

    after = open_backend()
    _, done, _, _ = counters(after)
    assert 200 <= done < len(keys)
    done_keys = [r.key for r in after.trials("c1", [TrialState.DONE])]
    assert len(done_keys) == done
    assert sorted(after.lookup_results(keys)) == sorted(done_keys)
    trial_keys = sorted(e.event.to_dict()["key"] for e in events(after, "c1", "trial"))
    assert trial_keys == sorted(done_keys)
    progress = events(after, "c1", "progress")
    assert progress[-1].event.to_dict()["done"] == done and len(progress) == done // 2
    assert after.done_keys("c1") == set(done_keys)


# --- backend specifics ---------------------------------------------------------------
def test_redis_keys_live_under_the_prefix(redis_base_url: str, redis_url: str) -> None:
    store = RedisStore(redis_url)
    client = redis.Redis.from_url(redis_base_url, decode_responses=True)
    try:
        store.create_campaign(campaign("c1", request_id="r1"))
        store.add_trials("c1", 0, keyed(0))
        store.record_results("c1", [ResultItem("key0000", result("key0000"))])
        prefix = store.prefix
        assert prefix.startswith("fltest-")
        assert set(client.scan_iter(match=f"{prefix}:*")) == {
            f"{prefix}:{name}"
            for name in (
                "campaign:c1",
                "campaign:c1:events",
                "campaign:c1:trials",
                "campaign:c1:trial_data",
                "campaign:c1:done",
                "campaigns",
                "owner:alice",
                "active",
                "requests:alice",
                "result:key0000",
            )
        }
    finally:
        client.close()
        store.close()
    assert RedisStore(redis_base_url).prefix == "faultlab"


def test_unreachable_redis_raises_unavailable_quickly() -> None:
    store = RedisStore("redis://operator:s3cret@127.0.0.1:1/0?prefix=p")
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="127.0.0.1:1") as raised:
        store.ping()
    with pytest.raises(UnavailableError):
        store.get_campaign("c1")
    with pytest.raises(UnavailableError):
        store.record_results("c1", [ResultItem("k", {})])
    assert time.monotonic() - started < 5.0
    assert "s3cret" not in str(raised.value)


def test_sqlite_store_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(UnavailableError, match="a-file"):
        SqliteStore(str(blocker / "store.db"))


def test_sqlite_in_memory() -> None:
    store = open_store("sqlite://:memory:")
    assert isinstance(store, SqliteStore)
    store.create_campaign(campaign())
    assert store.get_campaign("c1") is not None
    store.ping()
    store.close()
