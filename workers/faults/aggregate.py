"""From trial records to the fault campaign's report (tables with Wilson CIs, summary).

Rates of a single stratum use the Wilson score interval (with the finite-population
correction: an enumerated stratum is exact). A row that merges several strata (a layer over
its bits, a bit over layers, a whole model) is a *stratified* estimate, strata weighted by the
size of their fault space (:func:`~faultlab.workers.faults.planning.stratified_interval`).
Uniform campaigns (PyTorchFI-style random injection) are self-weighting: pooled Wilson
intervals. The adaptive planner stops on exactly these intervals.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from faultlab.stats import two_sided_z, wilson_interval
from faultlab.workers.faults.params import FaultParams
from faultlab.workers.faults.planning import Stratum, stratified_interval, stratum_interval

RATES = {
    "sdc": ("sdc", "critical_sdc"),          # output differs (critical SDCs included)
    "critical_sdc": ("critical_sdc",),       # top-1 changed on an input the golden model got right
    "due": ("due",),                         # NaN / Inf / exception
    "failure": ("critical_sdc", "due"),      # wrong top-1 or no answer: what a user suffers
    "masked": ("masked",),
}


def rate_columns(
    group: pd.DataFrame, populations: dict[str, float], weighted: bool, confidence: float
) -> dict[str, float]:
    """Every rate of a group of trial rows, each with its CI."""
    z = two_sided_z(confidence)
    out: dict[str, float] = {"trials": float(len(group))}
    per = group.groupby("stratum")
    sizes = per.size()
    pops = {k: populations.get(str(k), math.inf) for k in sizes.index}
    finite = all(not math.isinf(v) for v in pops.values())
    out["population"] = float(sum(pops.values())) if finite else math.inf
    for rate, outcomes in RATES.items():
        hit = group["outcome"].isin(outcomes)
        k = int(hit.sum())
        n = len(group)
        if len(sizes) == 1 and finite:
            (population,) = pops.values()
            p, lo, hi = stratum_interval(population, n, k, z)
        elif not weighted or not finite:
            p = k / n if n else math.nan
            lo, hi = wilson_interval(k, n, confidence)
        else:
            hits = hit.groupby(group["stratum"]).sum()
            parts = [(pops[h], int(n_h), int(hits[h])) for h, n_h in sizes.items()]
            p, lo, hi = stratified_interval(parts, z)
        out[f"{rate}_rate"] = p
        out[f"{rate}_ci_low"] = lo
        out[f"{rate}_ci_high"] = hi
    out["mean_accuracy"] = float(group["accuracy"].mean())
    return out


def trial_frame(records: list[tuple[dict[str, Any], dict[str, Any]]]) -> pd.DataFrame:
    """One row per (trial, variant): the baseline (``none``) and each mitigation."""
    rows = []
    for trial, result in records:
        base = {
            "workload": trial["workload"], "dtype": trial["dtype"], "stratum": trial["stratum"],
            "layer": trial["faults"][0]["site"] if len(trial["faults"]) == 1 else trial["layer"],
            "bit": trial["bit"] if trial["bit"] is not None else (
                trial["faults"][0]["bits"][0]
                if len(trial["faults"]) == 1 and len(trial["faults"][0].get("bits", [])) == 1
                else -1),
            "faults": len(trial["faults"]),
        }
        variants = {"none": result, **result.get("mitigated", {})}
        for name, r in variants.items():
            rows.append({
                **base, "mitigation": name, "outcome": r["outcome"],
                "accuracy": r.get("accuracy", math.nan),
                "sdc_inputs": r.get("sdc_inputs", 0),
                "critical_inputs": r.get("critical_inputs", 0),
                "inputs": r.get("inputs", 0), "nodes_affected": r.get("nodes_affected", math.nan),
                "forward_seconds": r.get("forward_seconds", math.nan),
                "critical_by_degree": r.get("critical_by_degree"),
                "sdc_by_degree": r.get("sdc_by_degree"),
            })
    return pd.DataFrame(rows)


def grouped(
    df: pd.DataFrame, keys: list[str], populations: dict[str, float], weighted: bool,
    confidence: float, extra: dict[str, Any] | None = None,
) -> pd.DataFrame:
    rows = []
    for values, group in df.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row.update(rate_columns(group, populations, weighted, confidence))
        rows.append(row)
    out = pd.DataFrame(rows)
    if extra and not out.empty:
        for col, fn in extra.items():
            out[col] = out.apply(fn, axis=1)
    return out


def degree_table(df: pd.DataFrame, meta: dict[str, Any], params: FaultParams) -> pd.DataFrame:
    """GNN: critical-SDC and SDC rates per node, by in-degree bucket, with Wilson CIs."""
    rows = []
    graph = {w["name"]: w for w in meta["workloads"] if w["kind"] == "graph"}
    if not graph:
        return pd.DataFrame()
    sub = df[df["workload"].isin(graph) & df["critical_by_degree"].notna()]
    edges = params.degree_bins
    labels = [f"<= {edges[0]}"] + [f"{a + 1}-{b}" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f"> {edges[-1]}")
    for (wl, mit), group in sub.groupby(["workload", "mitigation"], sort=True):
        counts = graph[wl]["degree_counts"]
        crit = [0] * len(counts)
        sdc = [0] * len(counts)
        for c_list, s_list in zip(group["critical_by_degree"], group["sdc_by_degree"], strict=True):
            for i, v in enumerate(c_list):
                crit[i] += int(v)
            for i, v in enumerate(s_list):
                sdc[i] += int(v)
        trials = len(group)
        for i, nodes in enumerate(counts):
            if nodes == 0:
                continue
            pairs = nodes * trials
            lo, hi = wilson_interval(crit[i], pairs, params.confidence)
            slo, shi = wilson_interval(sdc[i], pairs, params.confidence)
            rows.append({
                "workload": wl, "mitigation": mit, "degree": labels[i], "nodes": nodes,
                "node_trials": pairs,
                "sdc_rate": sdc[i] / pairs, "sdc_ci_low": slo, "sdc_ci_high": shi,
                "critical_sdc_rate": crit[i] / pairs, "critical_sdc_ci_low": lo,
                "critical_sdc_ci_high": hi,
            })
    return pd.DataFrame(rows)


def mitigation_table(df: pd.DataFrame, meta: dict[str, Any], params: FaultParams,
                     populations: dict[str, float], weighted: bool) -> pd.DataFrame:
    """A/B of each mitigation against no mitigation on the identical fault plan."""
    if set(df["mitigation"]) == {"none"}:
        return pd.DataFrame()
    rows = []
    overhead = meta.get("mitigation_overhead", {})
    for (wl, dtype), group in df.groupby(["workload", "dtype"], sort=True):
        base = rate_columns(group[group["mitigation"] == "none"], populations, weighted,
                            params.confidence)
        none = group[group["mitigation"] == "none"].reset_index(drop=True)
        arms = overhead.get(wl, {}).get(dtype, {})
        for mit in [m.name for m in params.mitigations]:
            g = group[group["mitigation"] == mit].reset_index(drop=True)
            if g.empty:
                continue
            r = rate_columns(g, populations, weighted, params.confidence)
            none_sdc = none["outcome"].isin(RATES["sdc"])
            mit_sdc = g["outcome"].isin(RATES["sdc"])
            none_crit = none["outcome"] == "critical_sdc"
            mit_crit = g["outcome"] == "critical_sdc"
            rows.append({
                "workload": wl, "dtype": dtype, "mitigation": mit, "trials": len(g),
                "sdc_rate_none": base["sdc_rate"], "sdc_rate": r["sdc_rate"],
                "sdc_ci_low": r["sdc_ci_low"], "sdc_ci_high": r["sdc_ci_high"],
                "critical_sdc_rate_none": base["critical_sdc_rate"],
                "critical_sdc_rate": r["critical_sdc_rate"],
                "critical_sdc_ci_low": r["critical_sdc_ci_low"],
                "critical_sdc_ci_high": r["critical_sdc_ci_high"],
                "due_rate_none": base["due_rate"], "due_rate": r["due_rate"],
                "failure_rate_none": base["failure_rate"], "failure_rate": r["failure_rate"],
                "failure_ci_low": r["failure_ci_low"], "failure_ci_high": r["failure_ci_high"],
                "failure_reduction": _reduction(base["failure_rate"], r["failure_rate"]),
                "critical_sdc_reduction": _reduction(base["critical_sdc_rate"],
                                                     r["critical_sdc_rate"]),
                "sdc_reduction": _reduction(base["sdc_rate"], r["sdc_rate"]),
                "trials_fixed": int((none_crit & ~mit_crit).sum()),
                "trials_broken": int((~none_crit & mit_crit).sum()),
                "sdc_trials_fixed": int((none_sdc & ~mit_sdc).sum()),
                "golden_accuracy": arms.get(mit, {}).get("accuracy"),
                "golden_accuracy_none": arms.get("none", {}).get("accuracy"),
                "overhead": arms.get(mit, {}).get("overhead"),
            })
    return pd.DataFrame(rows)


def nodes_affected_table(base: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and max of the graph nodes a fault changed, per workload and dtype."""
    return (
        base.groupby(["workload", "dtype"])["nodes_affected"]
        .agg(["mean", "median", "max"]).reset_index()
        .rename(columns={"mean": "nodes_affected_mean", "median": "nodes_affected_median",
                         "max": "nodes_affected_max"})
    )


def _reduction(before: float, after: float) -> float:
    return 1.0 - after / before if before > 0 else math.nan


def populations_of(all_strata: list[Stratum]) -> dict[str, float]:
    return {st.key: st.population for st in all_strata}
