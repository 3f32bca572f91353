"""Choosing the SDC tolerance after the fact: a fault report re-thresholded at another one.

Every trial records ``max_logit_deviation`` (the largest absolute output difference from the
golden run) and ``critical_logit_deviation`` (the largest one on an input whose correct top-1
changed), so the outcome at any tolerance ``t`` is exact without re-running a fault: a DUE
stays a DUE, a trial is a critical SDC iff ``critical_logit_deviation > t``, else an SDC iff
``max_logit_deviation > t``, else masked. The trial-level rates of ``per_layer``, ``per_bit``,
``layer_bit``, ``per_model`` (and ``per_target``) and of the summary are recomputed with the
same estimators and stratum weights as the stored report (its ``strata`` table).

Per-input SDC counts, per-degree counts and the mitigation A/B were counted at the campaign's
own ``faults.sdc_tolerance``; they are not derivable at another one, so the re-thresholded
report leaves those columns and tables out rather than show them at the wrong tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from faultlab.errors import SpecError
from faultlab.report import Report
from faultlab.workers.faults import aggregate as agg
from faultlab.workers.faults.planning import Stratum

#: Columns counted at the campaign's tolerance only (left out of a re-thresholded report).
_FIXED_AT_CAMPAIGN = ("per_input_sdc_", "per_input_critical_sdc_")
#: Columns taken over from the stored report (they do not depend on the tolerance).
_CARRIED = ("population", "sampled_fraction", "golden_accuracy")


def _populations(report: Report) -> agg.Populations:
    if "strata" not in report.tables:
        raise SpecError("sdc_tolerance", "this report has no strata table (made by an older "
                        "faults engine); re-run the campaign to re-threshold it")
    strata = {}
    for row in report.tables["strata"].to_dict(orient="records"):
        frame = row.get("frame")
        bit = row.get("bit")
        strata[str(row["stratum"])] = Stratum(
            str(row["stratum"]), str(row["workload"]), str(row["dtype"]), str(row["layer"]),
            None if bit is None or int(bit) < 0 else int(bit),
            population=math.inf if row.get("population") is None else float(row["population"]),
            weight=float(row["weight"]),
            frame=math.inf if frame is None or math.isnan(float(frame)) else float(frame),
            target=str(row.get("target") or ""))
    return agg.Populations(strata, pd.DataFrame(columns=[*agg.SCOPE, "faults"]))


def _without_fixed(columns: list[str]) -> list[str]:
    return [c for c in columns if not c.startswith(_FIXED_AT_CAMPAIGN)]


def _carry(new: pd.DataFrame, old: pd.DataFrame | None, keys: list[str]) -> pd.DataFrame:
    """``new`` with the tolerance-free columns of the stored table's matching rows."""
    carried = [c for c in _CARRIED if old is not None and c in old.columns]
    if old is None or not carried or new.empty:
        return new
    right = old[keys + carried].copy()
    for key in keys:  # JSON round trips may turn ints into floats: compare as text
        right[key] = right[key].astype(str)
    left = new.drop(columns=[c for c in carried if c in new.columns])
    left_keys = left[keys].astype(str)
    merged = left_keys.merge(right, on=keys, how="left")
    for col in carried:
        left[col] = merged[col].to_numpy()
    return left


def at_tolerance(report: Report, records: Sequence[Any], tolerance: float) -> Report:
    """``report`` (a fault campaign's) with SDC re-thresholded at ``tolerance``; ``records``
    are the campaign's trial records (``{"trial", "result"}`` dicts or
    :class:`~faultlab.workers.engine.TrialRecord`)."""
    if report.kind != "faults":
        raise SpecError("sdc_tolerance", f"re-thresholds fault campaigns, not {report.kind!r}",
                        ["faults"])
    if not (isinstance(tolerance, int | float) and math.isfinite(tolerance) and tolerance >= 0):
        raise SpecError("sdc_tolerance", f"must be a finite number ≥ 0, got {tolerance!r}")
    pops = _populations(report)
    pairs = [(r["trial"], r["result"]) if isinstance(r, dict) else (r.trial, r.result)
             for r in records]
    df = agg.trial_frame(pairs, float(tolerance))
    s = report.summary
    if df.empty:
        return Report(kind=report.kind, summary={**s, "sdc_tolerance": float(tolerance)},
                      primary=report.primary, provenance=report.provenance)
    weighted = s.get("sampling") != "uniform"
    confidence = float(s.get("confidence", 0.95))
    multi = len(s.get("targets") or []) > 1
    tables = agg.rate_tables(df, pops, weighted, confidence, multi)
    out: dict[str, pd.DataFrame] = {}
    for name, table in tables.items():
        keys = [c for c in agg.TABLE_KEYS[name] if c in table.columns]
        if multi and "target" in table.columns and "target" not in keys:
            keys.insert(1, "target")
        table = _carry(table, report.tables.get(name), keys)
        out[name] = table[_without_fixed(list(table.columns))]
    for name in ("strata", "nodes_affected"):  # tolerance-free
        if name in report.tables:
            out[name] = report.tables[name]
    overall = agg.rate_columns(df[df["mitigation"] == "none"], pops, weighted, confidence)
    summary = {k: v for k, v in s.items() if not k.startswith(_FIXED_AT_CAMPAIGN)}
    summary.update({k: v for k, v in overall.items()
                    if k not in ("trials", "population", "sampled_fraction")
                    and not k.startswith(_FIXED_AT_CAMPAIGN)})
    summary["mean_accuracy_under_fault"] = overall["mean_accuracy"]
    summary["sdc_tolerance"] = float(tolerance)
    summary["stored_sdc_tolerance"] = s.get("sdc_tolerance")
    return Report(kind=report.kind, summary=summary, tables=out, primary=report.primary,
                  provenance=report.provenance)


__all__ = ["at_tolerance"]
