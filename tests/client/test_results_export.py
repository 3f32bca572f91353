"""Results export: the Arrow path (stored JSON parsed by pyarrow) against the per-record path.

A real campaign on each store gives the records; some are then edited to carry nested dicts,
lists, ``None`` and NaN, and the two paths must give the same columns, dtypes and values.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pyarrow.parquet as pq
import pytest

from faultlab import Client
from faultlab.client._models import Results
from faultlab.client.cli import main
from tests.service.specs import fault_spec


def _per_record(results: Results) -> pd.DataFrame:
    """Today's path: the records decoded in Python, flattened, then a DataFrame from dicts."""
    return Results(results.campaign_id, results.records).to_pandas()


def _edited(raw: list[tuple[str, int, str, str]]) -> list[tuple[str, int, str, str]]:
    out = []
    for i, (key, attempts, trial, result) in enumerate(raw):
        t, r = json.loads(trial), json.loads(result)
        t["extra"] = {"deep": {"depth": i, "tag": None if i % 3 else "x"}, "ids": [i, i + 1]}
        r["score"] = math.nan if i % 2 else 0.5 * i
        r["note"] = None if i % 4 else f"n{i}"
        r["series"] = [] if i % 5 == 0 else [0.25, i]
        out.append((key, attempts, json.dumps(t), json.dumps(r)))
    return out


@pytest.fixture
def finished(server_factory, store_url):  # type: ignore[no-untyped-def]
    server = server_factory(store_url)
    with Client(server.address, timeout=60) as client:
        job = client.submit(fault_spec(trials=24, seed=5, name="export"))
        job.wait(raise_on_failure=True)
        yield server.address, job


def test_arrow_path_equals_per_record_path(finished, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, job = finished
    results = job.results(page_size=7)  # several pages
    assert len(results) == 24 and results._raw is not None
    fast = results.to_pandas()
    pd.testing.assert_frame_equal(fast, _per_record(results), check_exact=True)
    assert "trial.faults" in fast.columns and isinstance(fast["trial.faults"][0], str)
    assert {r["key"] for r in results.records} == set(fast["key"])

    edited = Results(job.id, raw=_edited(list(results._raw)))
    fast = edited.to_pandas()
    pd.testing.assert_frame_equal(fast, _per_record(edited), check_exact=True)
    assert fast["result.score"].isna().sum() == 12 and fast["trial.extra.deep.tag"].isna().any()
    assert fast["trial.extra.ids"][3] == "[3, 4]" and fast["result.series"][0] == "[]"

    out = tmp_path / "trials.parquet"
    assert main(["--address", address, "results", job.id, "--table", "trials", "--format",
                 "parquet", "-o", str(out)]) == 0
    pd.testing.assert_frame_equal(pq.read_table(out).to_pandas(), results.to_pandas(),
                                  check_exact=True)


def test_shapes_arrow_cannot_type_take_the_per_record_path() -> None:
    raw = [("a", 1, '{"p": {"x": 1}, "v": 1}', '{"o": "masked"}'),
           ("b", 2, '{"p": null, "v": "two"}', '{"o": "sdc"}')]
    results = Results("c", raw=raw)
    frame = results.to_pandas()
    expected = Results("c", results.records).to_pandas()
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    assert list(frame.columns) == ["key", "attempts", "trial.p.x", "trial.v", "result.o",
                                   "trial.p"]
    nullable = Results("d", raw=[(k, a, t.replace('"two"', "2"), r) for k, a, t, r in raw])
    assert nullable.to_table().column_names == list(Results("d", nullable.records).to_pandas())
    assert len(Results("e", raw=[]).to_pandas()) == 0
