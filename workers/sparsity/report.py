"""From sparsity trial records to report tables (no torch): cells with CIs over seeds,
accuracy–sparsity curves (AUC), Pareto frontiers, sensitivity, allocation, composition.

Definitions are in docs/sparsity.md; the ones computed here:

* **achieved sparsity** — ``1 − nonzero weights / weights of the dense model`` (weights of
  convolutions and linear layers; a physically removed weight counts as zero);
  **model sparsity** — the same over every parameter and floating buffer.
* **compression ratio** — dense fp32 bytes of the dense model / bytes of the cell.
* **theoretical speedup** — dense MACs of the dense model / effective MACs of the cell
  (zero weights skipped); **realized speedup** — dense latency / cell latency, both timed
  round-robin in the same worker process (median over seeds); **masked speedup** — the same
  for the masked twin of a structured cell (same channels zeroed instead of removed).
* **AUC** — area under accuracy vs achieved sparsity (piecewise linear through the dense
  point ``(0, dense accuracy)``), divided by its width, over ``[0, S]`` with ``S`` the largest
  sparsity every swept pruning curve of the report reaches (``auc``; NaN for a curve that
  stops short, e.g. one N:M point), and over the curve's own range (``auc_own``): a mean
  accuracy over the sparsity range.
* **Pareto** — a cell is on the accuracy–bytes (accuracy–latency) frontier when no other cell
  is at least as accurate and at least as small (fast), and strictly better in one of them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sp_stats

from faultlab.report import Report
from faultlab.stats import wilson_interval
from faultlab.workers.sparsity.intervals import accuracy_columns
from faultlab.workers.sparsity.params import STRUCTURED, SparsityParams

KEY = ["family", "method", "granularity", "schedule", "level", "level_kind"]


def _ratio(num: Any, den: Any) -> float:
    try:
        num, den = float(num), float(den)
    except (TypeError, ValueError):
        return math.nan
    if den <= 0 or math.isnan(num) or math.isnan(den):
        return math.nan
    return num / den


def cell_runs(
    cells: list[tuple[dict[str, Any], dict[str, Any]]], meta: dict[str, Any]
) -> pd.DataFrame:
    """One row per finished cell trial (per seed), plus the dense reference row."""
    dense = meta["dense"]
    rows: list[dict[str, Any]] = [{
        "family": "dense", "method": "dense", "granularity": "-", "schedule": "-", "level": 0.0,
        "level_kind": "-", "seed": None, "accuracy": dense["accuracy"], "correct": dense["correct"],
        "total": dense["total"],
        "achieved_sparsity": 1.0 - _ratio(dense["weights_nonzero"], dense["weights"]),
        "model_sparsity": 1.0 - _ratio(dense["nonzeros"], dense["params"]),
        "weights": dense["weights"], "weights_nonzero": dense["weights_nonzero"],
        "params": dense["params"], "nonzeros": dense["nonzeros"], "bytes": dense["bytes"],
        "compression_ratio": _ratio(dense["bytes_fp32_dense"], dense["bytes"]),
        "macs": dense["macs"], "macs_effective": dense["macs_effective"],
        "aggregation_macs": dense["aggregation_macs"],
        "theoretical_speedup": _ratio(dense["macs"], dense["macs_effective"]),
        "latency_seconds": math.nan, "realized_speedup": 1.0, "masked_speedup": math.nan,
        "error": None, "allocation": None, "correct_mask": dense.get("correct_mask"),
    }]
    for trial, result in cells:
        row: dict[str, Any] = {k: trial.get(k) for k in KEY}
        row["seed"] = trial.get("seed")
        row["allocation"] = (
            json.dumps(trial["allocation"], sort_keys=True) if trial.get("allocation") else None
        )
        if "error" in result:
            row["error"] = result["error"]
            rows.append(row)
            continue
        row.update({
            "accuracy": result["accuracy"], "correct": result["correct"], "total": result["total"],
            "correct_mask": result.get("correct_mask"),
            "achieved_sparsity": 1.0 - _ratio(result["weights_nonzero"], dense["weights"]),
            "model_sparsity": 1.0 - _ratio(result["nonzeros"], dense["params"]),
            "weights": result["weights"], "weights_nonzero": result["weights_nonzero"],
            "params": result["params"], "nonzeros": result["nonzeros"], "bytes": result["bytes"],
            "compression_ratio": _ratio(dense["bytes_fp32_dense"], result["bytes"]),
            "macs": result["macs"], "macs_effective": result["macs_effective"],
            "aggregation_macs": result["aggregation_macs"],
            "theoretical_speedup": _ratio(dense["macs"], result["macs_effective"]),
            "latency_seconds": result["latency_seconds"],
            **{k: result.get(k) for k in ("latency_device", "latency_batch_size", "latency_dtype")},
            "realized_speedup": _ratio(result["dense_latency_seconds"], result["latency_seconds"]),
            "masked_speedup": _ratio(
                result["dense_latency_seconds"], result.get("masked_latency_seconds")
            ),
            "error": None,
        })
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["flops"] = 2.0 * frame["macs_effective"]
    return frame


def pareto(values: pd.DataFrame, better_high: str, better_low: str) -> pd.Series:
    """Whether each row is on the frontier maximising ``better_high``, minimising ``better_low``."""
    acc = values[better_high].to_numpy(dtype=float)
    cost = values[better_low].to_numpy(dtype=float)
    flags = []
    for i in range(len(values)):
        if math.isnan(acc[i]) or math.isnan(cost[i]):
            flags.append(False)
            continue
        dominated = (acc >= acc[i]) & (cost <= cost[i]) & ((acc > acc[i]) | (cost < cost[i]))
        flags.append(not bool(np.nan_to_num(dominated, nan=0.0).any()))
    return pd.Series(flags, index=values.index)


def cell_table(runs: pd.DataFrame, meta: dict[str, Any], params: SparsityParams) -> pd.DataFrame:
    """One row per cell (seeds pooled): accuracy mean with its CI and every cost metric."""
    rows = []
    for key, group in runs.groupby(KEY, dropna=False, sort=False):
        ok = group[group["error"].isna()] if "error" in group else group
        row: dict[str, Any] = dict(zip(KEY, key, strict=True))
        row["seeds"] = int(len(ok))
        row["errors"] = int(len(group) - len(ok))
        accs = [float(a) for a in ok["accuracy"]]
        correct, total = (
            int(ok["correct"].sum()) if accs else 0,
            int(ok["total"].sum()) if accs else 0,
        )
        # Wilson on one test set's count (the seeds share the test inputs: S × T would be
        # √S too narrow)
        seeds_n = max(len(accs), 1)
        wilson = (wilson_interval(round(correct / seeds_n), round(total / seeds_n)) if total
                  else (math.nan, math.nan))
        row["accuracy_wilson_low"], row["accuracy_wilson_high"] = wilson
        row.update(accuracy_columns(ok, meta))
        row["accuracy_std"] = (
            float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0 if accs else math.nan
        )
        for col in ("achieved_sparsity", "model_sparsity", "weights", "weights_nonzero", "params",
                    "nonzeros", "bytes", "compression_ratio", "macs", "macs_effective", "flops",
                    "aggregation_macs", "theoretical_speedup"):
            row[col] = float(ok[col].mean()) if len(ok) else math.nan
        for col in ("latency_seconds", "realized_speedup", "masked_speedup"):
            vals = ok[col].dropna() if len(ok) else ok[col]
            row[col] = float(vals.median()) if len(vals) else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["accuracy_drop"] = float(meta["dense"]["accuracy"]) - table["accuracy"]
    table["pareto_bytes"] = pareto(table, "accuracy", "bytes")
    table["pareto_speed"] = pareto(
        table.assign(inv=1.0 / table["realized_speedup"]), "accuracy", "inv"
    )
    return table


def _area(points: list[tuple[float, float]], upto: float) -> float:
    """Mean of the piecewise-linear curve through ``points`` over ``[0, upto]``."""
    if upto <= 0 or len(points) < 2:
        return math.nan
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    grid = np.linspace(0.0, upto, 512)
    return float(np.trapezoid(np.interp(grid, xs, ys), grid) / upto)


def curve_table(cells: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """Per pruning curve (method × granularity × schedule): AUC and the largest sparsity
    within 1 point of dense accuracy."""
    if cells.empty:
        return pd.DataFrame()
    dense = float(meta["dense"]["accuracy"])
    prune = cells[(cells["family"] == "prune") & cells["accuracy"].notna()]
    curves: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for (method, gran, sched), group in prune.groupby(
        ["method", "granularity", "schedule"], sort=False
    ):
        pts = sorted(
            (float(s), float(a))
            for s, a in zip(group["achieved_sparsity"], group["accuracy"], strict=True)
        )
        pts = [(0.0, dense)] + [p for p in pts if p[0] > 0]
        curves[(method, gran, sched)] = pts
    if not curves:
        return pd.DataFrame()
    # The common range is set by the curves that sweep levels (an N:M pattern is one point).
    swept = [max(x for x, _ in pts) for pts in curves.values() if len(pts) > 2]
    common = min(swept) if swept else min(max(x for x, _ in pts) for pts in curves.values())
    rows = []
    for (method, gran, sched), pts in curves.items():
        within = [x for x, a in pts if a >= dense - 0.01]
        covers = max(x for x, _ in pts) >= common - 1e-9
        rows.append({
            "method": method, "granularity": gran, "schedule": sched, "points": len(pts) - 1,
            "auc": _area(pts, common) if covers else math.nan, "auc_range": common,
            "auc_own": _area(pts, max(x for x, _ in pts)), "max_sparsity": max(x for x, _ in pts),
            "max_sparsity_within_1pt": max(within) if within else 0.0,
        })
    return (
        pd.DataFrame(rows)
        .sort_values("auc", ascending=False, na_position="last")
        .reset_index(drop=True)
    )


def sensitivity_table(
    scans: list[tuple[dict[str, Any], dict[str, Any]]], meta: dict[str, Any]
) -> pd.DataFrame:
    # Drops are measured on the validation split the scan scored (``meta["selection"]``).
    dense = float(meta.get("selection", meta["dense"]).get("dense_accuracy",
                                                           meta["dense"]["accuracy"]))
    layer_sizes = {e["name"]: e["size"] for e in meta["layers"]}
    group_sizes = {e["name"]: e["size"] for e in meta["groups"]}
    rows = []
    for trial, result in scans:
        sizes = group_sizes if trial["method"] in STRUCTURED else layer_sizes
        rows.append({
            "method": trial["method"], "target": trial["target"], "level": trial["level"],
            "seed": trial["seed"], "accuracy": result.get("accuracy", math.nan),
            "accuracy_drop": dense - float(result.get("accuracy", math.nan)),
            "target_size": sizes.get(trial["target"]), # weights, or channels of a group
        })
    frame = pd.DataFrame(rows)
    return (frame.groupby(["method", "target", "level"], sort=False)
            .agg(accuracy=("accuracy", "mean"), accuracy_drop=("accuracy_drop", "mean"),
                 target_size=("target_size", "first"))
            .reset_index())


def allocation_table(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    keep = ["method", "granularity", "level", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
            "achieved_sparsity", "bytes", "theoretical_speedup", "realized_speedup"]
    table = (
        cells[keep]
        .rename(columns={"granularity": "strategy", "level": "target"})
        .reset_index(drop=True)
    )
    alloc = runs[(runs["family"] == "allocation") & runs["allocation"].notna()]
    by_level = {float(lvl): a for lvl, a in zip(alloc["level"], alloc["allocation"], strict=True)}
    table["allocation"] = [
        by_level.get(float(t)) if s == "sensitivity" else None
        for t, s in zip(table["target"], table["strategy"], strict=True)
    ]
    return table


def summary(
    tables: dict[str, pd.DataFrame], meta: dict[str, Any], params: SparsityParams
) -> dict[str, Any]:
    cells = tables["cells"]
    dense = meta["dense"]
    out: dict[str, Any] = {
        "dense_accuracy": dense["accuracy"], "dense_params": dense["params"],
        "dense_macs": dense["macs"],
        "cells": int((cells["family"] != "dense").sum()) if not cells.empty else 0,
        "seeds": params.seeds, "levels": params.levels.resolved(),
    }
    if "curves" in tables:
        curves = tables["curves"]
        best = curves.iloc[0]
        out["best_curve"] = f"{best['method']}/{best['granularity']}/{best['schedule']}"
        out["auc"] = {
            f"{r['method']}/{r['granularity']}/{r['schedule']}": r["auc"]
            for _, r in curves.iterrows() if pd.notna(r["auc"])
        }
    if not cells.empty:
        tuned = cells[cells["method"] == "dense_finetuned"]
        if not tuned.empty:  # the dense model given the pruned cells' fine-tuning budget
            out["dense_finetuned_accuracy"] = float(tuned["accuracy"].iloc[0])
        at_half = _structured_at_half(cells)
        if at_half is not None:
            out["structured_at_half"] = at_half
        quant = cells[cells["method"].isin(["int8_dynamic", "int8_static"])]
        if not quant.empty:
            out["int8"] = {
                r["method"]: {"accuracy": r["accuracy"], "realized_speedup": r["realized_speedup"],
                              "compression_ratio": r["compression_ratio"]}
                for _, r in quant.iterrows()
            }
        out["pareto_bytes"] = [
            f"{r['method']}/{r['granularity']}/{r['schedule']}"
            + (f"@{r['level']:g}" if pd.notna(r["level"]) else "")
            for _, r in cells[cells["pareto_bytes"]].iterrows()
        ]
    if "sensitivity" in tables:
        sens = tables["sensitivity"]
        mean_drop = sens.groupby("target")["accuracy_drop"].mean().sort_values()
        out["least_sensitive"] = list(mean_drop.index[:3])
        out["most_sensitive"] = list(mean_drop.index[::-1][:3])
    if "allocation" in tables:
        alloc = tables["allocation"]
        out["allocation"] = {
            str(t): {s: a for s, a in zip(g["strategy"], g["accuracy"], strict=True)}
            for t, g in alloc.groupby("target")
        }
    out["hoefler_ppe"] = None  # see docs/sparsity.md: exact definition not available here
    return out


def _structured_at_half(cells: pd.DataFrame) -> dict[str, Any] | None:
    """The channel-pruning cell nearest 50 % sparsity with the best realized speedup."""
    structured = cells[
        cells["method"].isin(["channel_l1", "channel_l2"]) & (cells["family"] == "prune")
    ]
    if structured.empty:
        return None
    half = structured.loc[(structured["level"].astype(float) - 0.5).abs().idxmin()]
    at = structured[structured["level"] == half["level"]]
    best = (
        at.loc[at["realized_speedup"].idxmax()]
        if at["realized_speedup"].notna().any()
        else at.iloc[0]
    )
    return {
        "method": best["method"], "granularity": best["granularity"],
        "schedule": best["schedule"], "level": float(best["level"]),
        "realized_speedup": best["realized_speedup"], "masked_speedup": best["masked_speedup"],
        "theoretical_speedup": best["theoretical_speedup"], "accuracy": best["accuracy"],
        "achieved_sparsity": best["achieved_sparsity"],
    }


def composition_table(
    fault_report: Report, records: list[Any], fault_meta: dict[str, Any], params: SparsityParams
) -> pd.DataFrame:
    """SDC / critical-SDC / DUE rates with CIs per variant (the fault engine's estimates),
    the dense ÷ variant SDC ratio, and a paired (McNemar) comparison on the identical faults."""
    names = ["dense", *[c.name for c in (params.compose.chains if params.compose else [])]]
    workloads = [w["name"] for w in fault_meta["workloads"]]
    variant_of = dict(zip(workloads, names, strict=True))
    per_model = fault_report.tables["per_model"]
    per_model = per_model[per_model["mitigation"] == "none"].copy()
    per_model.insert(0, "variant", [variant_of.get(w, w) for w in per_model["workload"]])
    outcome: dict[str, dict[tuple[Any, ...], str]] = {n: {} for n in names}
    for r in records:
        if r.trial.get("type") != "fault":
            continue
        fault = r.trial["fault"]
        key = (fault["stratum"].split("|", 1)[1], fault["round"], fault["ordinal"], fault["dtype"])
        outcome[r.trial["variant"]][key] = str(r.result.get("outcome"))
    dense_rate = {
        dt: float(row["sdc_rate"]) for dt, row in
        per_model[per_model["variant"] == "dense"].set_index("dtype").iterrows()
    }
    per_model["dense_vs_variant_sdc_ratio"] = [
        _ratio(dense_rate.get(dt), rate) for dt, rate in zip(per_model["dtype"],
                                                             per_model["sdc_rate"], strict=True)]
    # McNemar on the identical faults, for SDC and for critical SDC
    for prefix, hits in (("sdc", ("sdc", "critical_sdc")), ("critical_sdc", ("critical_sdc",))):
        only_dense, only_variant, p_values = [], [], []
        for _, row in per_model.iterrows():
            base, mine = outcome["dense"], outcome[row["variant"]]
            common = [k for k in mine if k in base and k[3] == row["dtype"]]
            b = sum(1 for k in common if base[k] in hits and mine[k] not in hits)
            c = sum(1 for k in common if mine[k] in hits and base[k] not in hits)
            only_dense.append(b)
            only_variant.append(c)
            p_values.append(float(sp_stats.binomtest(c, b + c, 0.5).pvalue) if b + c else 1.0)
        per_model[f"{prefix}_only_dense"] = only_dense
        per_model[f"{prefix}_only_variant"] = only_variant
        per_model["mcnemar_p" if prefix == "sdc" else "critical_sdc_mcnemar_p"] = p_values
    order = {n: i for i, n in enumerate(names)}
    per_model = per_model.sort_values(
        ["dtype", "variant"], key=lambda s: s.map(order) if s.name == "variant" else s
    )
    return per_model.reset_index(drop=True)


def composition_summary(table: pd.DataFrame) -> dict[str, Any]:
    return {
        f"{r['variant']}/{r['dtype']}": {
            "sdc_rate": r["sdc_rate"], "sdc_ci": [r["sdc_ci_low"], r["sdc_ci_high"]],
            "dense_vs_variant_sdc_ratio": r["dense_vs_variant_sdc_ratio"],
            "mcnemar_p": r["mcnemar_p"],
            "critical_sdc_rate": r["critical_sdc_rate"],
            "critical_sdc_mcnemar_p": r["critical_sdc_mcnemar_p"],
            "trials": r["trials"],
        }
        for _, r in table.iterrows()
    }
