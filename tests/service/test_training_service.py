"""Training campaigns through the real service (gRPC + Ray + a store): a sweep streams live
curve events, stores each cell's checkpoint as the tenant's artifact, survives a coordinator
kill -9 without retraining finished cells, and a trained cell feeds a fault campaign by
reference (``model: {from_campaign, cell}``), which another tenant cannot use."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from faultlab import CampaignState, Client
from faultlab.errors import NotFoundError, SpecError
from faultlab.server.store import open_store
from faultlab.states import TrialState
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc
from tests.service.cluster import ServeProcess


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
        # Small cells (KarateClub, 40 steps), one in flight at a time: the kill lands after
        # the first finished cell and long before the last.
        spec = _sweep(4, 40, {"name": "karate"}, max_inflight=1)
        campaign = _run_until_some_done(first.address, spec, at_least=1)
    finally:
        first.kill9()

    store = open_store(store_url)
    before = {r.key: r.attempts for r in store.trials(campaign, [TrialState.DONE])}
    assert 0 < len(before) < 8
    store.close()

    second = ServeProcess(store_url, port=first.port, log=tmp_path / "serve2.log")
    try:
        with Client(second.address, timeout=60) as client:
            job = client.get(campaign)
            assert job.wait(timeout=180).state is CampaignState.SUCCEEDED
            events = list(job.events())
            records = job.results().records
    finally:
        second.kill9()  # the sweep is over; a graceful stop would only add Ray's shutdown

    trials = Counter(e.data["key"] for e in events if e.type == "trial")
    assert len(trials) == 8 and set(trials.values()) == {1}
    logs = [e.data["message"] for e in events if e.type == "log"]
    restart = next(i for i, e in enumerate(events)
                   if e.type == "log" and "coordinator restarted" in e.data["message"])
    computed = [int(m.group(1)) for m in (re.search(r"computed (\d+) trials", x) for x in logs)
                if m]
    assert computed[-1] == 8 - len(before)  # only the missing cells trained again
    store = open_store(store_url)
    after = {r.key: r.attempts for r in store.trials(campaign, [TrialState.DONE])}
    assert {k: after[k] for k in before} == before  # finished cells never re-dispatched
    curves = [e for e in events[restart:] if e.type == "curve"]
    assert curves and not {e.data["key"] for e in curves} & set(before)
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
        # cells of ~1 s: several drains of the live records (every 0.25 s) while each trains
        job = alice.submit(_sweep(1, 600, karate))
        events = list(job.events())
        assert job.status().state is CampaignState.SUCCEEDED
        curve = [e for e in events if e.type == "curve"]
        assert curve and {"step", "loss", "train_acc"} <= set(curve[0].data["point"]["curve"])
        trial_at = {e.data["key"]: i for i, e in enumerate(events) if e.type == "trial"}
        live = {e.data["key"] for i, e in enumerate(events)
                if e.type == "curve" and i < trial_at[e.data["key"]]}
        assert live  # curve points arrived while their cells trained, before their results
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


def test_a_cached_cell_of_another_tenant_is_usable_but_nothing_else_leaks(  # type: ignore[no-untyped-def]
    server_factory, store_url
) -> None:
    """Bob's sweep, identical to one Alice ran, is answered from the shared result cache; its
    cells' checkpoints become Bob's artifacts (so ``from_campaign`` on Bob's own campaign
    works), while a checkpoint only Alice's campaigns produced stays invisible to him."""
    karate = {"name": "karate"}
    server = server_factory(store_url, tokens={"tok-a": "alice", "tok-b": "bob"})
    with (
        Client(server.address, token="tok-a") as alice,
        Client(server.address, token="tok-b") as bob,
    ):
        shared = alice.submit(_sweep(1, 40, karate))
        private = alice.submit({**_sweep(1, 40, karate), "seed": 3})
        for job in (shared, private):
            assert job.wait(timeout=120).state is CampaignState.SUCCEEDED
        hers = {r["result"]["checkpoint"] for r in private.results().records}

        mine = bob.submit(_sweep(1, 40, karate))
        assert mine.wait(timeout=120).state is CampaignState.SUCCEEDED
        assert mine.status().trials_cached == 0  # another tenant's hits look computed
        got = {r["result"]["checkpoint"] for r in mine.results().records}
        assert got == {r["result"]["checkpoint"] for r in shared.results().records}

        cell = {"variant": "gcn-d2-w16-none-relu", "seed": 0}
        fault = bob.submit(_fault_on(mine.id, karate, cell))
        assert fault.wait(timeout=120).state is CampaignState.SUCCEEDED
        assert fault.status().spec["model"]["file"] in got and fault.report().summary

        store = open_store(store_url)
        try:
            assert all(store.stat_artifact("bob", d) is not None for d in got)
            assert hers.isdisjoint(got)
            assert all(store.stat_artifact("bob", d) is None for d in hers)
        finally:
            store.close()
        theirs = {**_fault_on(mine.id, karate, cell),
                  "model": {"name": "training:gcn", "file": sorted(hers)[0],
                            "options": {"depth": 2, "width": 16}}}
        with pytest.raises(NotFoundError):
            bob.submit(theirs)


def _training_with(**changes: Any) -> str:
    spec = _sweep(1, 10, {"name": "karate"})
    spec["training"].update(changes)
    return json.dumps(spec)


BAD_TRAINING = [
    (_training_with(variants=[{"dropout": [0.5]}]), "training.variants.0.dropout"),
    (_training_with(variants=[{"depth": [0]}]), "training.variants.0.depth"),
    (_training_with(variants=[{"depth": [2, 10_000]}]), "training.variants.0.depth"),
    (_training_with(variants=[{"skip": ["dense"]}]), "training.variants.0.skip.0"),
    (_training_with(recipes=[{"lr": 0}]), "training.recipes.0.lr"),
    (_training_with(recipes=[{"lr": -0.01}]), "training.recipes.0.lr"),
    (_training_with(recipes=[{"loss_target": -1}]), "training.recipes.0.loss_target"),
    (_training_with(datasets=[{"name": "digits"}]), "training.datasets.0.name"),
]


def test_bad_training_specs_are_invalid_argument_before_any_work(  # type: ignore[no-untyped-def]
    server_factory, sqlite_url
) -> None:
    """Unknown variant options, depth <= 0 or absurd, lr <= 0, a negative loss target, a
    non-graph dataset: INVALID_ARGUMENT naming the field, and no campaign is created."""
    server = server_factory(sqlite_url)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.FaultlabStub(channel)
        for text, field in BAD_TRAINING:
            with pytest.raises(grpc.RpcError) as info:
                stub.SubmitCampaign(pb.SubmitCampaignRequest(spec=text), timeout=60)
            err = info.value
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.details())
            assert err.details().startswith(field), err.details()
    with Client(server.address) as client:
        assert client.list() == []  # nothing queued: no Ray work for bad input
