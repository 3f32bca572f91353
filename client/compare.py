"""Comparing campaigns (dense vs pruned, GCN vs GAT, before vs after a mitigation).

:func:`compare` aligns the same table of every campaign on the strata they share (layer, bit,
dtype, model, transform, recipe, ...; a key column that only names the campaign — one value
each, different values — is dropped) and reports, per stratum and metric, each campaign minus
the first (the baseline):

* **paired**, where the two campaigns ran the identical plan (the same trials, identity
  columns aside) and their records are at hand: binary fault outcomes get the Agresti–Min
  interval for a difference of paired proportions (Agresti & Min 2005, Biometrics 61:515:
  ``d = (c − b) / n``, centre ``(c̃ − b̃)``, ``b̃ = (b + ½)/(n + 2)``,
  ``Var = (b̃ + c̃ − (c̃ − b̃)²) / (n + 2)``) with the finite-population correction, and the
  exact McNemar test (McNemar 1947, Psychometrika 12:153: ``c ~ Binomial(b + c, ½)``);
  numeric outcomes get a paired bootstrap of the mean difference (Efron & Tibshirani 1993,
  percentile interval over resampled pairs);
* **unpaired** otherwise: the MOVER / square-and-add interval built from each side's own CI
  (Newcombe 1998, Stat. Med. 17:873, method 10; Zou & Donner 2008):
  ``d ± sqrt((p₂ − l₂)² + (u₁ − p₁)²)`` (low) and ``sqrt((u₂ − p₂)² + (p₁ − l₁)²)`` (high).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from faultlab.client._compare_stats import agresti_min, mcnemar, mover, paired_bootstrap
from faultlab.client._report_format import ci_columns
from faultlab.hashing import canonical_json
from faultlab.report import KEY_COLUMNS, Report

if TYPE_CHECKING:
    from faultlab.client._client import CampaignHandle


@dataclass(frozen=True)
class Source:
    """One campaign to compare: its report and, for paired intervals, its trial records
    (``{"trial": ..., "result": ...}`` dicts, as ``CampaignHandle.results().records``)."""

    label: str
    report: Report
    records: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Comparison:
    """Differences of each campaign against the first, per common stratum and metric."""

    labels: list[str]
    table_name: str
    strata: list[str]
    rows: pd.DataFrame

    def table(self) -> pd.DataFrame:
        return self.rows

    def to_dict(self) -> dict[str, Any]:
        from faultlab.report import _clean

        return {"labels": self.labels, "table": self.table_name, "strata": self.strata,
                "rows": _clean(self.rows.to_dict(orient="records"))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    def to_html(self) -> str:
        from faultlab.client.report_html import comparison_page

        return comparison_page(self)


def _source(item: Report | Source | CampaignHandle, index: int, paired: bool) -> Source:
    if isinstance(item, Source):
        return item
    if isinstance(item, Report):
        return Source(f"campaign {index + 1}", item)
    records = item.results().records if paired else None
    return Source(item.id, item.report(), records)


def metrics_of(df: pd.DataFrame) -> list[str]:
    """Columns that carry a CI (``sdc_rate`` with ``sdc_ci_low``/``sdc_ci_high``, ...)."""
    columns = list(df.columns)
    return [c for c in columns
            if (pair := ci_columns(columns, c)) is not None and c not in pair]


def _strata(tables: list[pd.DataFrame]) -> tuple[list[str], list[str]]:
    """(alignment keys, identity keys): a key column constant within every campaign but
    different between them names the campaign, not a stratum."""
    common = [c for c in KEY_COLUMNS if all(c in t.columns for t in tables)]
    keys, identity = [], []
    for column in common:
        values = [set(t[column].astype(str)) for t in tables]
        if all(len(v) == 1 for v in values) and len(set.union(*values)) > 1:
            identity.append(column)
        else:
            keys.append(column)
    return keys, identity


def _pair_key(trial: dict[str, Any], identity: list[str]) -> str:
    return canonical_json({k: v for k, v in trial.items() if k not in identity})


def plans_identical(a: Source, b: Source, identity: list[str]) -> bool:
    """The same trials in both (their identity columns aside)."""
    if a.records is None or b.records is None or len(a.records) != len(b.records):
        return False
    keys = {_pair_key(r["trial"], identity) for r in a.records}
    return keys == {_pair_key(r["trial"], identity) for r in b.records}


def _unit_frame(source: Source, identity: list[str]) -> pd.DataFrame:
    """One row per (trial, variant) with its strata, outcome and numeric results."""
    records = source.records or []
    keys = [_pair_key(r["trial"], identity) for r in records]
    if source.report.kind == "faults":
        from faultlab.workers.faults.aggregate import trial_frame

        frame = trial_frame([(r["trial"], r["result"]) for r in records])
        repeat = [1 + len(r["result"].get("mitigated", {})) for r in records]
        frame["pair"] = np.repeat(keys, repeat)
        return frame
    rows = [{**{k: v for k, v in r["trial"].items() if not isinstance(v, dict | list)},
             **{k: v for k, v in r["result"].items() if not isinstance(v, dict | list)},
             "pair": key} for r, key in zip(records, keys, strict=True)]
    return pd.DataFrame(rows)



def _select(frame: pd.DataFrame, row: pd.Series, keys: list[str]) -> pd.DataFrame:
    for key in keys:
        if key in frame.columns:
            frame = frame[frame[key].astype(str) == str(row[key])]
    if "mitigation" in frame.columns and "mitigation" not in keys:
        frame = frame[frame["mitigation"] == "none"]
    return frame


def _paired(units: tuple[pd.DataFrame, pd.DataFrame], row: pd.Series, keys: list[str],
            metric: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """The paired difference of ``metric`` in this stratum, or None if it cannot be paired."""
    pair = _select(units[0], row, keys).merge(_select(units[1], row, keys), on="pair",
                                              suffixes=("_a", "_b"))
    if pair.empty:
        return None
    stem = metric.removesuffix("_rate")
    if "outcome_a" in pair and metric.endswith("_rate"):
        from faultlab.workers.faults.aggregate import RATES

        if stem not in RATES:
            return None
        before = pair["outcome_a"].isin(RATES[stem])
        after = pair["outcome_b"].isin(RATES[stem])
        fixed, broken = int((before & ~after).sum()), int((~before & after).sum())
        population = float(row.get("population_a", math.inf) or math.inf)
        d, lo, hi = agresti_min(len(pair), fixed, broken, options["z"], population)
        return {"difference": d, "difference_ci_low": lo, "difference_ci_high": hi,
                "pairs": len(pair), "method": "paired (Agresti–Min, McNemar)",
                "p_value": mcnemar(fixed, broken),
                "discordant_fixed": fixed, "discordant_broken": broken}
    if f"{metric}_a" not in pair:
        return None
    d, lo, hi = paired_bootstrap(pair[f"{metric}_a"].to_numpy(float),
                                 pair[f"{metric}_b"].to_numpy(float), options["confidence"],
                                 options["resamples"], options["seed"])
    return {"difference": d, "difference_ci_low": lo, "difference_ci_high": hi,
            "pairs": len(pair), "method": "paired bootstrap"}


def _difference(row: pd.Series, metric: str, keys: list[str], labels: tuple[str, str],
                units: tuple[pd.DataFrame, pd.DataFrame] | None,
                options: dict[str, Any]) -> dict[str, Any]:
    low, high = options["ci"][metric]
    a = (float(row[f"{metric}_a"]), float(row[f"{low}_a"]), float(row[f"{high}_a"]))
    b = (float(row[f"{metric}_b"]), float(row[f"{low}_b"]), float(row[f"{high}_b"]))
    out: dict[str, Any] = {k: row[k] for k in keys}
    out.update({"metric": metric, "baseline": labels[0], "other": labels[1],
                "baseline_value": a[0], "other_value": b[0]})
    result = _paired(units, row, keys, metric, options) if units is not None else None
    if result is None:
        d, lo, hi = mover(a, b)
        result = {"difference": d, "difference_ci_low": lo, "difference_ci_high": hi,
                  "method": "unpaired (MOVER)"}
    out.update(result)
    return out


def compare(sources: Sequence[Report | Source | CampaignHandle], *, table: str | None = None,
            metrics: Sequence[str] | None = None, labels: Sequence[str] | None = None,
            paired: bool = True, confidence: float | None = None, resamples: int = 2000,
            seed: int = 0) -> Comparison:
    """Each campaign minus the first, per common stratum of ``table`` (default: the primary
    table) and metric (default: every metric with a CI in all of them); paired where the
    plans are identical and records are at hand (handles fetch theirs), unpaired otherwise."""
    from faultlab.errors import ArgumentError
    from faultlab.stats import two_sided_z

    if len(sources) < 2:
        raise ArgumentError("sources", "compare needs at least two campaigns")
    items = [_source(s, i, paired) for i, s in enumerate(sources)]
    if labels:
        items = [Source(lab, s.report, s.records) for lab, s in zip(labels, items, strict=True)]
    if len({s.report.kind for s in items}) > 1:
        raise ArgumentError("sources", "campaigns of different kinds cannot be compared")
    name = table or items[0].report.primary
    tables = [s.report.table(name, readable=False) for s in items]
    keys, identity = _strata(tables)
    chosen = list(metrics) if metrics else [
        m for m in metrics_of(tables[0]) if all(m in t.columns for t in tables[1:])]
    missing = [m for m in chosen if ci_columns(list(tables[0].columns), m) is None]
    if missing:
        raise ArgumentError("metrics", f"no CI columns for {missing}; metrics with CIs: "
                                       f"{metrics_of(tables[0])}")
    conf = confidence or float(items[0].report.summary.get("confidence", 0.95))
    columns = list(tables[0].columns)
    options = {"z": two_sided_z(conf), "confidence": conf, "resamples": resamples, "seed": seed,
               "ci": {m: ci_columns(columns, m) for m in chosen}}
    rows: list[dict[str, Any]] = []
    for other, other_table in zip(items[1:], tables[1:], strict=True):
        units = None
        if paired and plans_identical(items[0], other, identity):
            units = (_unit_frame(items[0], identity), _unit_frame(other, identity))
        merged = (tables[0].merge(other_table, on=keys, suffixes=("_a", "_b")) if keys
                  else tables[0].merge(other_table, how="cross", suffixes=("_a", "_b")))
        for _, row in merged.iterrows():
            rows.extend(_difference(row, m, keys, (items[0].label, other.label), units, options)
                        for m in chosen)
    return Comparison([s.label for s in items], name, keys, pd.DataFrame(rows))
