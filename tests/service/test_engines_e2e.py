"""Every engine runs through the whole service: real gRPC, the session's Ray, a real store.

The engine tests under tests/workers/ check each engine's correctness in-process; these prove
that each one's context and trials survive Ray (pickling, the object store), that its report
crosses the wire, and that a resubmission is answered from the result cache.
"""

from __future__ import annotations

from typing import Any

import pytest

from faultlab import CampaignState, Client

SPECS: dict[str, dict[str, Any]] = {
    "sparsity": {
        "kind": "sparsity",
        "seed": 1,
        "model": {"name": "digits_cnn"},
        "dataset": {"name": "digits", "split": "test", "size": 120},
        "sparsity": {
            "methods": ["magnitude"],
            "granularities": ["layer"],
            "schedules": ["one_shot"],
            "levels": {"values": [0.5, 0.9]},
            "seeds": 1,
            "latency": {"batch": 16, "repeats": 2, "warmup": 0, "threads": 1},
        },
    },
    "watermark": {
        "kind": "watermark",
        "seed": 2,
        "model": {"name": "digits_cnn"},
        "dataset": {"name": "digits", "split": "test", "size": 200},
        "watermark": {
            "schemes": [{"name": "adi"}],
            "seeds": 1,
            "trigger_size": 30,
            "embed": {"epochs": 3},
            "verification": {"null_models": 2},
            "sensitivity": {"enabled": False},
            "attacks": [{"name": "gaussian_noise", "strengths": [0.1, 0.5]}],
        },
    },
    "sampling": {
        "kind": "sampling",
        "seed": 3,
        "model": {"name": "digits_cnn"},
        "dataset": {"name": "digits", "split": "test"},
        "sampling": {
            "mode": "replay",
            "samplers": [{"name": "srs"}, {"name": "stratified", "oracle": "msp", "strata": 4}],
            "oracles": ["msp"],
            "budgets": [20, 40],
            "repetitions": 10,
        },
    },
}


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_engine_through_service(server_factory, sqlite_url, kind: str) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(sqlite_url)
    with Client(server.address, timeout=120) as client:
        job = client.submit(SPECS[kind])
        status = job.wait(timeout=600, raise_on_failure=False)
        assert status.state is CampaignState.SUCCEEDED, status.error
        assert status.trials_done == status.trials_total > 0
        report = job.report()
        assert report.kind == kind and report.tables and not report.table().empty
        assert report.provenance["spec_hash"] == status.spec_hash
        assert len(job.results()) == status.trials_done

        again = client.submit({**SPECS[kind], "name": "resubmitted"}).wait(timeout=300)
        assert again.trials_cached == again.trials_done == status.trials_done
