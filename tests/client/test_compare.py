"""Comparing campaigns: paired intervals on the identical plan (Agresti–Min + exact McNemar,
checked against a direct computation from the trial records), unpaired (MOVER) otherwise."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from faultlab.client.compare import Source, compare, paired_bootstrap
from faultlab.errors import ArgumentError
from faultlab.report import Report
from faultlab.spec import parse_spec
from faultlab.workers.local import run_local

FAILURE = ("critical_sdc", "due")


def _campaign(label: str, seed: int = 5, options: dict[str, Any] | None = None) -> Source:
    model: dict[str, Any] = {"name": "digits_cnn", **({"options": options} if options else {})}
    spec = parse_spec({
        "kind": "faults", "seed": seed, "model": model,
        "dataset": {"name": "digits", "size": 120},
        "faults": {"sampling": "stratified", "stratify": ["layer"], "margin": 0.25,
                   "layers": ["conv1", "fc1"]},
    })
    report, records = run_local(spec)
    return Source(label, report, [{"trial": r.trial, "result": r.result} for r in records])


@pytest.fixture(scope="module")
def campaigns() -> dict[str, Source]:
    return {
        "dense": _campaign("dense"),
        # the same fault plan on a model trained for fewer epochs: paired trial by trial
        "short": _campaign("short training", options={"epochs": 5}),
        "other_seed": _campaign("other seed", seed=9),
    }


def _agresti_min(n: int, b: int, c: int, population: float, z: float = 1.959964) -> tuple:
    """Agresti & Min (2005) for p_other − p_base with b = fixed, c = broken discordant pairs,
    finite-population corrected; written out here independently of the library."""
    d = (c - b) / n
    bt, ct = (b + 0.5) / (n + 2), (c + 0.5) / (n + 2)
    f = math.sqrt((population - n) / (population - 1))
    half = z * math.sqrt((bt + ct - (ct - bt) ** 2) / (n + 2)) * f
    return d, min(max(-1.0, ct - bt - half), d), max(min(1.0, ct - bt + half), d)


def test_identical_plans_give_the_paired_interval_of_a_direct_computation(
    campaigns: dict[str, Source],
) -> None:
    dense, pruned = campaigns["dense"], campaigns["short"]
    result = compare([dense, pruned], metrics=["failure_rate", "sdc_rate"])
    rows = result.table()
    assert set(rows["method"]) == {"paired (Agresti–Min, McNemar)"}
    assert result.labels == ["dense", "short training"] and "layer" in result.strata
    outcome = {json.dumps({k: v for k, v in r["trial"].items() if k != "workload"},
                          sort_keys=True): r["result"]["outcome"] for r in dense.records or []}
    population = dense.report.tables["per_layer"].set_index("layer")["population"]
    discordant = 0
    for row in rows[rows["metric"] == "failure_rate"].itertuples():
        b = c = n = 0
        for record in pruned.records or []:
            trial = record["trial"]
            if trial["faults"][0]["site"] != row.layer:
                continue
            key = json.dumps({k: v for k, v in trial.items() if k != "workload"}, sort_keys=True)
            before, after = outcome[key] in FAILURE, record["result"]["outcome"] in FAILURE
            n, b, c = n + 1, b + (before and not after), c + (after and not before)
        d, lo, hi = _agresti_min(n, b, c, float(population[row.layer]))
        assert row.pairs == n and (row.discordant_fixed, row.discordant_broken) == (b, c)
        assert row.difference == pytest.approx(d)
        assert row.difference_ci_low == pytest.approx(lo, abs=1e-6)
        assert row.difference_ci_high == pytest.approx(hi, abs=1e-6)
        expected_p = 1.0 if b + c == 0 else stats.binomtest(c, b + c, 0.5).pvalue
        assert row.p_value == pytest.approx(expected_p)
        discordant += b + c
    assert discordant > 0, "the two models differ on some faults: the test must see it"


def test_different_plans_are_compared_unpaired_from_each_side_ci(
    campaigns: dict[str, Source],
) -> None:
    dense, other = campaigns["dense"], campaigns["other_seed"]
    rows = compare([dense, other], metrics=["critical_sdc_rate"]).table()
    assert set(rows["method"]) == {"unpaired (MOVER)"}
    a = dense.report.tables["per_layer"].set_index("layer")
    b = other.report.tables["per_layer"].set_index("layer")
    for row in rows.itertuples():
        p1, l1, u1 = (a.loc[row.layer, c] for c in
                      ("critical_sdc_rate", "critical_sdc_ci_low", "critical_sdc_ci_high"))
        p2, l2, u2 = (b.loc[row.layer, c] for c in
                      ("critical_sdc_rate", "critical_sdc_ci_low", "critical_sdc_ci_high"))
        assert row.difference == pytest.approx(p2 - p1)
        assert row.difference_ci_low == pytest.approx(p2 - p1 - math.hypot(p2 - l2, u1 - p1))
        assert row.difference_ci_high == pytest.approx(p2 - p1 + math.hypot(u2 - p2, p1 - l1))


def test_reports_without_records_compare_unpaired_and_export(
    campaigns: dict[str, Source],
) -> None:
    result = compare([campaigns["dense"].report, campaigns["short"].report])
    assert set(result.table()["method"]) == {"unpaired (MOVER)"}
    data = json.loads(result.to_json())
    assert data["labels"] == ["campaign 1", "campaign 2"] and data["rows"]
    assert "<table" in result.to_html() and "difference" in result.to_html()


def test_a_key_column_that_only_names_the_campaign_is_not_a_stratum() -> None:
    def report(workload: str, rate: float) -> Report:
        table = pd.DataFrame({"workload": [workload] * 2, "layer": ["a", "b"],
                              "sdc_rate": [rate, rate], "sdc_ci_low": [rate - 0.1] * 2,
                              "sdc_ci_high": [rate + 0.1] * 2})
        return Report(kind="faults", tables={"per_layer": table}, primary="per_layer")

    result = compare([report("cnn@digits", 0.5), report("cnn+nm@digits", 0.3)])
    assert result.strata == ["layer"]
    assert list(result.table()["layer"]) == ["a", "b"]
    assert result.table()["difference"].tolist() == pytest.approx([-0.2, -0.2])


def test_paired_bootstrap_matches_the_normal_interval_of_many_pairs() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.05, 400)
    b = a + rng.normal(0.02, 0.01, 400)
    d, lo, hi = paired_bootstrap(a, b, 0.95, 4000, seed=1)
    diff = b - a
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff))
    assert d == pytest.approx(diff.mean())
    assert lo == pytest.approx(d - half, abs=2e-4) and hi == pytest.approx(d + half, abs=2e-4)


def test_compare_needs_two_campaigns_of_one_kind() -> None:
    report = Report(kind="faults")
    with pytest.raises(ArgumentError):
        compare([report])
    with pytest.raises(ArgumentError):
        compare([report, Report(kind="sparsity")])
