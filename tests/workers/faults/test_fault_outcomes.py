"""Outcomes beyond top-1 in the report (top-k change rates with intervals, logit deviations)
and SDC re-thresholded after the fact, checked against a campaign run at that tolerance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from faultlab.errors import SpecError
from faultlab.report import Report
from faultlab.spec import parse_spec
from faultlab.workers.faults.aggregate import outcome_at
from faultlab.workers.faults.tolerance import at_tolerance
from faultlab.workers.local import run_local

RATES = ("sdc", "critical_sdc", "masked", "failure")


def _spec(tolerance: float = 0.0) -> Any:
    return parse_spec({"kind": "faults", "seed": 3, "model": {"name": "digits_cnn"},
                       "dataset": {"name": "digits", "size": 60},
                       "faults": {"sampling": "stratified", "stratify": ["layer"],
                                  "margin": 0.3, "bits": [20, 23, 26, 30],
                                  "layers": ["conv1", "fc2"], "sdc_tolerance": tolerance}})


@pytest.fixture(scope="module")
def exact() -> tuple[Report, list[Any]]:
    return run_local(_spec())


def test_topk_and_deviation_columns_per_layer_and_campaign(exact: tuple[Report, list]) -> None:
    report, records = exact
    table = report.table(readable=False)
    for stem in ("topk_changed", "per_input_topk_changed"):
        assert ((table[f"{stem}_ci_low"] <= table[f"{stem}_rate"])
                & (table[f"{stem}_rate"] <= table[f"{stem}_ci_high"])).all()
        s = report.summary
        assert s[f"{stem}_ci_low"] <= s[f"{stem}_rate"] <= s[f"{stem}_ci_high"]
    # a top-k change is an SDC; top-1 changes on correct inputs change the top-k set too
    assert (table["topk_changed_rate"] <= table["sdc_rate"]).all()
    devs = [r.result["max_logit_deviation"] for r in records
            if r.result["max_logit_deviation"] is not None]
    assert report.summary["max_logit_deviation"] == pytest.approx(max(devs))
    assert 0.0 <= report.summary["median_logit_deviation"] <= max(devs)
    assert (table["median_logit_deviation"] <= table["max_logit_deviation"]).all()
    assert "strata" in report.tables and report.to_json()


def test_rethresholded_report_equals_a_campaign_run_at_that_tolerance(
    exact: tuple[Report, list]
) -> None:
    report, records = exact
    devs = sorted(r.result["max_logit_deviation"] for r in records
                  if r.result["max_logit_deviation"])
    tolerance = float(np.float32(devs[len(devs) // 2]))  # half of the SDCs become masked
    direct, direct_records = run_local(_spec(tolerance))
    assert [r.trial["faults"] for r in direct_records] == [r.trial["faults"] for r in records]
    for a, b in zip(records, direct_records, strict=True):
        assert outcome_at(a.result, tolerance) == b.result["outcome"]
    # through JSON, as the CLI gets it (report over gRPC, records as plain dicts)
    wire = Report.from_json(report.to_json())
    plain = [{"trial": r.trial, "result": r.result} for r in records]
    after = at_tolerance(wire, plain, tolerance)
    assert after.summary["sdc_tolerance"] == tolerance
    assert after.summary["sdc_rate"] < report.summary["sdc_rate"]
    for rate in RATES:
        for col in (f"{rate}_rate", f"{rate}_ci_low", f"{rate}_ci_high"):
            assert after.summary[col] == pytest.approx(direct.summary[col]), col
            got = after.table(readable=False).set_index("layer")[col]
            want = direct.table(readable=False).set_index("layer")[col]
            assert got.to_dict() == pytest.approx(want.to_dict()), col
    populations = after.tables["per_layer"]["population"].tolist()
    assert populations == report.tables["per_layer"]["population"].tolist()
    assert not any(c.startswith("per_input_sdc") for c in after.table(readable=False).columns)
    same = at_tolerance(report, records, 0.0)
    for rate in RATES:
        assert same.summary[f"{rate}_rate"] == pytest.approx(report.summary[f"{rate}_rate"])


def test_rethresholding_refuses_bad_tolerances(exact: tuple[Report, list]) -> None:
    report, records = exact
    for bad in (-1.0, float("nan")):
        with pytest.raises(SpecError) as err:
            at_tolerance(report, records, bad)
        assert err.value.field == "sdc_tolerance"
    with pytest.raises(SpecError):
        at_tolerance(Report(kind="sparsity"), records, 0.1)
