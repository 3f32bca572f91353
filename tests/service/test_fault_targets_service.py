"""A multi-target fault campaign through the whole service (gRPC, Ray, the store): per-target
report rows, per-target trials in the results, and SDC re-thresholded by ``faultlab report
--sdc-tolerance`` from the stored trials."""

from __future__ import annotations

import json

import pytest

from faultlab import CampaignState, Client
from faultlab.client.cli import main

SPEC = {
    "kind": "faults", "seed": 11, "model": {"name": "gcn"}, "dataset": {"name": "karate"},
    "faults": {"target": ["weight", "activation", "message"], "sampling": "stratified",
               "stratify": ["dtype"], "margin": 0.4, "bits": [30, 23]},
}


def test_multi_target_campaign_reports_per_target(server_factory, sqlite_url,  # type: ignore[no-untyped-def]
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=120) as client:
        job = client.submit(SPEC)
        status = job.wait(timeout=600, raise_on_failure=False)
        assert status.state is CampaignState.SUCCEEDED, status.error
        report = job.report()
        rows = report.tables["per_target"].set_index("target")
        assert set(rows.index) == {"weight", "activation", "message"}
        records = job.results().records
        for target, row in rows.iterrows():
            assert row["trials"] == sum(r["trial"]["target"] == target for r in records)
            assert row["sdc_ci_low"] <= row["sdc_rate"] <= row["sdc_ci_high"]
        assert set(report.tables["per_layer"]["target"]) == set(rows.index)
        assert sum(rows["trials"]) == status.trials_done == len(records)
    assert main(["report", job.id, "--sdc-tolerance", "1e9", "--address", server.address]) == 0
    loose = json.loads(capsys.readouterr().out)
    assert loose["summary"]["sdc_tolerance"] == 1e9
    per_target = {r["target"]: r for r in loose["tables"]["per_target"]}
    assert set(per_target) == {"weight", "activation", "message"}
    for target, row in per_target.items():  # bit-23 flips deviate far less than 1e9
        assert row["sdc_rate"] <= rows.loc[target, "sdc_rate"]
        assert row["masked_rate"] + row["sdc_rate"] + row["due_rate"] == pytest.approx(1.0)
        assert row["population"] == rows.loc[target, "population"]
    assert loose["summary"]["sdc_rate"] < report.summary["sdc_rate"]


def test_faults_in_an_fx_int8_model_through_the_service(server_factory, sqlite_url  # type: ignore[no-untyped-def]
                                                        ) -> None:
    """An FX-converted int8 model travels from the prepare task to the shard workers (Ray's
    pickling), as ``examples/faults-pruned-digits.yaml`` needs: it once failed there."""
    spec = {"kind": "faults", "seed": 5,
            "model": {"name": "digits_cnn",
                      "transforms": [{"name": "int8_static", "params": {"samples": 64}}]},
            "dataset": {"name": "digits", "size": 32},
            "faults": {"target": "weight", "dtypes": ["int8"], "sampling": "uniform",
                       "trials": 24}}
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=120) as client:
        job = client.submit(spec)
        status = job.wait(timeout=600, raise_on_failure=False)
        assert status.state is CampaignState.SUCCEEDED, status.error
        records = job.results().records
        assert len(records) == 24 and {r["trial"]["dtype"] for r in records} == {"int8"}
