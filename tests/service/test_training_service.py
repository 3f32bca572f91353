"""Training campaigns through the real service (gRPC + Ray + a store): a sweep streams live
curve events, stores each cell's checkpoint as the tenant's artifact, survives a coordinator
kill -9 without retraining finished cells, and a trained cell feeds a fault campaign by
reference (``model: {from_campaign, cell}``), which another tenant cannot use."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from faultlab import CampaignState, Client
from faultlab.errors import NotFoundError, SpecError
from faultlab.server.store import open_store
from faultlab.states import TrialState
from tests.service.cluster import ServeProcess

SBM = {"name": "sbm", "label": "sbm300", "options": {"num_nodes": 300}}


def _sweep(seeds: int, epochs: int, dataset: dict[str, Any], **execution: Any) -> dict[str, Any]:
    return {
        "kind": "training", "name": "train-test", "seed": 0,
        "execution": {"shard_seconds": 0.05, **execution},
        "training": {
            "variants": [{"family": ["gcn"], "depth": [2, 3], "width": [16]}],
            "recipes": [{"name": "adam", "optimizer": "adam", "lr": 0.02, "epochs": epochs}],
            "datasets": [dataset], "seeds": seeds, "curve_points": 10,
        },
    }


def _fault_on(campaign: str, dataset: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "faults", "name": "faults-on-a-cell", "seed": 5,
        "model": {"from_campaign": campaign, "cell": cell},
        "dataset": {"name": dataset["name"], "options": dataset.get("options", {})},
        "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                   "trials": 12},
    }


def _run_until_some_done(address: str, spec: dict[str, Any], at_least: int) -> str:
    with Client(address, timeout=60) as client:
        job = client.submit(spec)
        deadline = time.monotonic() + 120
        while job.status().trials_done < at_least:
            assert time.monotonic() < deadline, "no cell finished before the kill"
            time.sleep(0.05)
        return job.id


def test_training_kill9_resumes_without_retraining(tmp_path: Path) -> None:
    store_url = f"sqlite://{tmp_path / 'training.db'}"
    first = ServeProcess(store_url, log=tmp_path / "serve1.log")
    try:
        campaign = _run_until_some_done(first.address, _sweep(6, 120, SBM), at_least=1)
    finally:
        first.kill9()

    store = open_store(store_url)
    before = {r.key: r.attempts for r in store.trials(campaign, [TrialState.DONE])}
    assert 0 < len(before) < 12
    store.close()

    second = ServeProcess(store_url, port=first.port, log=tmp_path / "serve2.log")
    try:
        with Client(second.address, timeout=60) as client:
            job = client.get(campaign)
            assert job.wait(timeout=180).state is CampaignState.SUCCEEDED
            events = list(job.events())
            records = job.results().records
    finally:
        second.stop()

    trials = Counter(e.data["key"] for e in events if e.type == "trial")
    assert len(trials) == 12 and set(trials.values()) == {1}
    logs = [e.data["message"] for e in events if e.type == "log"]
    restart = next(i for i, e in enumerate(events)
                   if e.type == "log" and "coordinator restarted" in e.data["message"])
    computed = [int(m.group(1)) for m in (re.search(r"computed (\d+) trials", x) for x in logs)
                if m]
    assert computed[-1] == 12 - len(before)  # only the missing cells trained again
    store = open_store(store_url)
    after = {r.key: r.attempts for r in store.trials(campaign, [TrialState.DONE])}
    assert {k: after[k] for k in before} == before  # finished cells never re-dispatched
    curves = [e for e in events[restart:] if e.type == "curve"]
    assert curves and not {e.data["key"] for e in curves} & set(before)
    trial_at = {e.data["key"]: i for i, e in enumerate(events) if e.type == "trial"}
    live = {e.data["key"] for i, e in enumerate(events)
            if e.type == "curve" and i < trial_at[e.data["key"]]}
    assert live  # curve points arrived while their cells trained, before their results
    stored = store.get_campaign(campaign)
    assert stored is not None
    owner = stored.owner
    for record in records:
        checkpoint = record["result"]["checkpoint"]
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", checkpoint)
        info = store.stat_artifact(owner, checkpoint)
        assert info is not None and info.size > 0
    store.close()


def test_curves_stream_and_a_cell_feeds_a_fault_campaign(  # type: ignore[no-untyped-def]
    server_factory, store_url
) -> None:
    karate = {"name": "karate"}
    server = server_factory(store_url, tokens={"tok-a": "alice", "tok-b": "bob"})
    with (
        Client(server.address, token="tok-a") as alice,
        Client(server.address, token="tok-b") as bob,
    ):
        job = alice.submit(_sweep(1, 60, karate))
        events = list(job.events())
        assert job.status().state is CampaignState.SUCCEEDED
        curve = [e for e in events if e.type == "curve"]
        assert curve and {"step", "loss", "train_acc"} <= set(curve[0].data["point"]["curve"])
        cell = {"variant": "gcn-d2-w16-none-relu", "seed": 0}
        fault = alice.submit(_fault_on(job.id, karate, cell))
        assert fault.wait(timeout=120).state is CampaignState.SUCCEEDED
        model = fault.status().spec["model"]  # resolved at submit: the cell's checkpoint
        assert model["name"] == "training:gcn" and model["file"].startswith("sha256:")
        assert model["options"]["depth"] == 2 and fault.report().summary
        with pytest.raises(NotFoundError):
            bob.submit(_fault_on(job.id, karate, cell))
        with pytest.raises(SpecError) as ambiguous:
            alice.submit(_fault_on(job.id, karate, {"seed": 0}))
        assert ambiguous.value.field == "model.cell"
