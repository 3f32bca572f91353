"""Results export: the Arrow path (stored JSON parsed by pyarrow) against the per-record path.

A real campaign on each store gives the records; some are then edited to carry nested dicts,
lists, ``None`` and NaN, and the two paths must give the same columns, dtypes and values.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow.parquet as pq
import pytest

from faultlab import Client
from faultlab.client._models import Results
from faultlab.client._results_table import ResultPages
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


def _shapes(raw: list[tuple[str, int, str, str]]) -> list[tuple[str, int, str, str]]:
    """Records the Arrow path must still read exactly as the per-record path: keys that first
    appear in later records (column order), date-like strings, lists nested deeper than the
    text cut handles, escapes and non-ASCII text in lists, a list key also used inside another
    value, and texts not in ``json.dumps``'s form."""
    out = []
    for i, (key, attempts, trial, result) in enumerate(raw):
        t, r = json.loads(trial), json.loads(result)
        if i >= 5:
            r["late"] = i
        if i >= 3:
            t["when"] = f"2026-01-{1 + i % 9:02d}"
        r["deep"] = [[[[[i]]]]]
        r["tags"] = ["é", 'a"b\\', "\x01[", "ids"] if i % 3 == 0 else ["x"]
        r["nested"] = {"ids": [i], "more": [{"ids": [True, None]}]}
        text = json.dumps(r)
        out.append((key, attempts, json.dumps(t), text.replace(", ", ",") if i % 4 == 1 else text))
    return out


def _late_dict(raw: list[tuple[str, int, str, str]]) -> list[tuple[str, int, str, str]]:
    """A dict that the first records lack: a whole parse finds it missing (null) in them."""
    out = []
    for i, (key, attempts, trial, result) in enumerate(raw):
        r = json.loads(result)
        if i >= 6:
            r["extra"] = {"a": i, "b": "x"}
        out.append((key, attempts, trial, json.dumps(r)))
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
    results = job.results(page_size=7)  # several pages, each parsed as it came
    assert len(results) == 24 and isinstance(results._raw, ResultPages)
    assert results._raw.joined() is not None
    fast = results.to_pandas()
    pd.testing.assert_frame_equal(fast, _per_record(results), check_exact=True)
    assert "trial.faults" in fast.columns and isinstance(fast["trial.faults"][0], str)
    assert {r["key"] for r in results.records} == set(fast["key"])

    edited = Results(job.id, raw=_edited(list(results._raw)))
    fast = edited.to_pandas()
    pd.testing.assert_frame_equal(fast, _per_record(edited), check_exact=True)
    assert fast["result.score"].isna().sum() == 12 and fast["trial.extra.deep.tag"].isna().any()
    assert fast["trial.extra.ids"][3] == "[3, 4]" and fast["result.series"][0] == "[]"

    shapes = Results(job.id, raw=_shapes(list(results._raw)))
    fast = shapes.to_pandas()
    pd.testing.assert_frame_equal(fast, _per_record(shapes), check_exact=True)
    assert fast["result.tags"][0] == '["\\u00e9", "a\\"b\\\\", "\\u0001[", "ids"]'
    assert list(fast.columns)[-2:] == ["trial.when", "result.late"]
    assert fast["trial.when"][3] == "2026-01-04" and fast["result.nested.ids"][2] == "[2]"

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


def test_pages_are_bounded_by_size_and_equal_row_pages(finished, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A page holds what fits in about RESULT_CHARS, read a few rows at a time, and the paged
    export equals the one of fixed 7-row pages and the per-record path."""
    from faultlab.server import servicer
    from faultlab.v1 import faultlab_pb2 as pb

    _, job = finished
    by_rows = job.results(page_size=7)
    row = max(len(k) + len(t) + len(r) for k, _, t, r in by_rows._raw) + 16
    monkeypatch.setattr(servicer, "RESULT_CHARS", 5 * row)
    monkeypatch.setattr(servicer, "READ_ROWS", 2)
    first = job.client._stub.GetResults(pb.GetResultsRequest(campaign_id=job.id))
    assert 1 <= len(first.records) <= 5 and first.next_page_token and first.total == 24
    by_size = job.results()
    assert by_size._raw == by_rows._raw
    pd.testing.assert_frame_equal(by_size.to_pandas(), _per_record(by_rows), check_exact=True)


def test_pages_join_as_one_parse_would(finished) -> None:  # type: ignore[no-untyped-def]
    """Pages parsed one by one join into the whole parse's table (columns a page lacks, in the
    order pandas gives them); a dict some pages lack makes the whole parse decide."""
    _, job = finished
    raw = list(job.results(page_size=7)._raw)
    for rows, joins in ((_shapes(raw), True), (_edited(raw), True), (_late_dict(raw), False)):
        with ThreadPoolExecutor(1) as executor:
            pages = ResultPages(executor)
            for start in range(0, len(rows), 5):
                pages.add(rows[start:start + 5])
            assert (pages.joined() is not None) is joins
            pd.testing.assert_frame_equal(Results(job.id, raw=pages).to_pandas(),
                                          _per_record(Results(job.id, raw=rows)), check_exact=True)


def test_list_texts_are_cut_at_their_types_depth(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A list's text is cut out with a pattern as deep as its Arrow type (items nesting up to
    3 deep, nulls and empty lists inside), and only rows it cannot cut exactly (floats, deeper
    items) are re-encoded; either way the text is ``json.dumps``'s, as on the per-record path."""
    from faultlab.client import _results_table as rt

    redone: list[tuple[str, ...]] = []
    reencoded = rt._reencoded

    def spy(section, path, rows):  # type: ignore[no-untyped-def]
        redone.append(tuple(path))
        return reencoded(section, path, rows)

    monkeypatch.setattr(rt, "_reencoded", spy)
    raw = []
    for i in range(12):
        result = {"a": [{"m": [[i], []]}, None] if i % 2 else [], "b": [[], [i, None]],
                  "c": [[[[i]]]], "f": [0.5, i], "d": [[[[[i]]]]]}
        raw.append((f"k{i}", 1, json.dumps({"i": i}), json.dumps(result)))
    results = Results("depth", raw=raw)
    fast = rt.results_table(raw).to_pandas()  # the Arrow path itself (no Unsupported)
    pd.testing.assert_frame_equal(fast, Results("depth", results.records).to_pandas(),
                                  check_exact=True)
    assert fast["result.a"][1] == '[{"m": [[1], []]}, null]' and fast["result.c"][0] == "[[[[0]]]]"
    assert sorted(redone) == [("d",), ("f",)]


def test_a_finished_campaigns_next_page_is_read_ahead(finished) -> None:  # type: ignore[no-untyped-def]
    """A finished campaign's page starts the read of the next page's first rows; the next page
    is served from it, once, and equals the page a fresh read gives."""
    from faultlab.server import servicer
    from faultlab.v1 import faultlab_pb2 as pb

    _, job = finished
    stub = job.client._stub

    def ahead() -> list[tuple[str, str, int, int]]:
        return [key for reads in servicer._READ_AHEAD._reads.values() for key in reads
                if key[1] == job.id]

    first = stub.GetResults(pb.GetResultsRequest(campaign_id=job.id, page_size=7))
    assert [key[2:] for key in ahead()] == [(int(first.next_page_token), 7)]
    request = pb.GetResultsRequest(campaign_id=job.id, page_size=7,
                                   page_token=first.next_page_token)
    second = stub.GetResults(request)
    assert [key[2:] for key in ahead()] == [(int(second.next_page_token), 7)]  # taken, next put
    assert stub.GetResults(request) == second  # a fresh read (nothing read ahead for it)


def test_redis_pages_drop_a_trial_whose_texts_went_missing(redis_url) -> None:  # type: ignore[no-untyped-def]
    """A result deleted under a page's read (a campaign being deleted) drops its trial from the
    page, as SQLite's join does, instead of failing the page's script."""
    from faultlab.server.store import ResultItem, open_store
    from tests.server.test_store_contract import result, with_trials

    store = open_store(redis_url)
    try:
        keys = with_trials(store, 4)
        store.mark_running("c1", keys)
        store.record_results("c1", [ResultItem(k, result(k)) for k in keys])
        store._redis.delete(store._result_key(keys[1]))  # type: ignore[attr-defined]
        rows = store.result_texts("c1", 0, 10)
        assert [(r.key, r.index, r.attempts) for r in rows] == [
            (keys[0], 0, 1), (keys[2], 2, 1), (keys[3], 3, 1)]
        assert [json.loads(r.result_json) for r in rows] == [result(keys[i]) for i in (0, 2, 3)]
    finally:
        store.close()
