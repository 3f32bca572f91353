"""A fault campaign's report built a page of records at a time (what the coordinator does, so a
large campaign's report never holds every result dict) is the report built from all of them:
same tables, same summary, whatever the page size."""

from __future__ import annotations

import pandas as pd
import pytest

from faultlab.spec import parse_spec
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.local import run_local


@pytest.fixture(scope="module")
def campaign() -> tuple[object, dict, list]:
    spec = parse_spec({"kind": "faults", "seed": 3, "model": {"name": "digits_cnn"},
                       "dataset": {"name": "digits", "size": 24},
                       "faults": {"sampling": "adaptive", "stratify": ["layer", "bit"],
                                  "bits": [0, 23, 30, 31], "margin": 0.3, "pilot_trials": 4,
                                  "max_rounds": 3, "mitigations": [{"name": "ranger"}]}})
    engine = FaultEngine()
    report, records = run_local(spec)
    meta = engine.prepare(spec).meta
    return spec, meta, records


@pytest.mark.parametrize("page", [1, 7, 10_000])
def test_pages_give_the_whole_report(campaign: tuple, page: int) -> None:
    spec, meta, records = campaign
    engine = FaultEngine()
    whole = engine.aggregate(spec, meta, records)
    pages = [records[i:i + page] for i in range(0, len(records), page)]
    paged = engine.aggregate_pages(spec, meta, iter(pages))
    assert whole.summary["rounds"] > 1 and "mitigation" in whole.tables
    assert paged.summary.pop("compute_seconds") == pytest.approx(
        whole.summary.pop("compute_seconds"), rel=1e-12)  # summed page by page
    assert paged.summary == whole.summary
    assert set(paged.tables) == set(whole.tables)
    for name, table in whole.tables.items():
        pd.testing.assert_frame_equal(paged.tables[name], table, check_exact=False, rtol=1e-12)
