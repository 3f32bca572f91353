"""From trial records to the fault campaign's report (tables with CIs, summary).

Every campaign-level figure weights its strata by their fault-space size (rates, accuracy
under fault, per-input and per-degree rates), the estimators of
:mod:`~faultlab.workers.faults.estimates`: a single stratum uses Wilson's interval with the
finite-population correction (exact only for an enumerated stratum); several strata the
stratified estimate. Uniform campaigns (PyTorchFI-style random injection) are self-weighting:
pooled. Per-input (per-node) rates treat each trial as a cluster of inputs; mitigation effects
are paired differences on the identical plan with McNemar's test. ``population`` is the true
fault space of a row's scope (sampled strata or not) and ``sampled_fraction`` the share of it
that was injected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from faultlab.stats import two_sided_z, wilson_interval
from faultlab.workers.faults import estimates as est
from faultlab.workers.faults.params import FaultParams
from faultlab.workers.faults.planning import Stratum

RATES = {
    "sdc": ("sdc", "critical_sdc"),          # output differs (critical SDCs included)
    "critical_sdc": ("critical_sdc",),       # top-1 changed on an input the golden model got right
    "due": ("due",),                         # NaN / Inf / exception
    "failure": ("critical_sdc", "due"),      # wrong top-1 or no answer: what a user suffers
    "masked": ("masked",),
}
#: Trial-level rates beyond the outcome classes: a trial counts when any input has the flag.
FLAG_RATES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    # the set of top-k classes changed on some input (k = workload.TOP_K)
    "topk_changed": lambda g: g["topk_changed_inputs"] > 0,
}
#: Per-input (per-node for GNNs) rates: the share of a trial's inputs with the outcome.
INPUT_RATES = {"sdc": "sdc_inputs", "critical_sdc": "critical_inputs",
               "topk_changed": "topk_changed_inputs"}
SCOPE = ("workload", "target", "dtype", "layer", "bit")
#: The rate tables of a fault report and their keys (``target`` joins them in multi-target
#: campaigns; ``per_target`` exists only there); ``layer_bit`` has the unmitigated rows only.
TABLE_KEYS: dict[str, list[str]] = {
    "per_layer": ["workload", "dtype", "layer", "mitigation"],
    "per_bit": ["workload", "dtype", "bit", "mitigation"],
    "layer_bit": ["workload", "dtype", "layer", "bit"],
    "per_model": ["workload", "dtype", "mitigation"],
    "per_target": ["workload", "dtype", "target", "mitigation"],
}


@dataclass
class Populations:
    """The campaign's strata by key and its whole fault space, one row per (workload, dtype,
    layer, bit) with its number of distinct faults (``bit`` −1 for multi-bit / value models)."""

    strata: dict[str, Stratum]
    space: pd.DataFrame

    def fault_space(self, scope: dict[str, Any]) -> float:
        """Distinct faults of a row's scope (``*`` / −1 match every value)."""
        columns = {key: self.space[key].to_numpy() for key in (*SCOPE, "faults")}
        keep = np.ones(len(self.space), dtype=bool)
        for key in SCOPE:
            value = scope.get(key)
            if value is None or value == "*" or (key == "bit" and value == -1):
                continue
            keep &= columns[key] == value
        return float(columns["faults"][keep].sum()) if keep.any() else math.nan


def populations_of(all_strata: list[Stratum]) -> Populations:
    rows = []
    for st in all_strata:
        for c in st.components:
            base = {"workload": st.workload, "target": c.site.get("target", st.target),
                    "dtype": c.site["dtype"], "layer": c.site["name"]}
            if st.bit is not None or (c.cells == c.site["numel"] * len(c.bits) == c.faults):
                rows += [{**base, "bit": b, "faults": float(c.site["numel"])} for b in c.bits]
            else:
                rows.append({**base, "bit": -1, "faults": c.faults})
    space = pd.DataFrame(rows, columns=[*SCOPE, "faults"])
    return Populations({st.key: st for st in all_strata}, space)


def _strata_parts(
    group: pd.DataFrame, pops: Populations, weighted: bool
) -> list[tuple[float, float, pd.DataFrame]]:
    """``(weight, frame, rows)`` per stratum of a group; one unweighted, unenumerated pseudo
    stratum for a self-weighting (uniform) campaign."""
    by_key = list(group.groupby("stratum", sort=True))
    if not weighted or any(str(key) not in pops.strata for key, _ in by_key):
        return [(1.0, math.inf, group)]
    return [(pops.strata[str(k)].weight, pops.strata[str(k)].frame, rows) for k, rows in by_key]


def rate_columns(
    group: pd.DataFrame, pops: Populations, weighted: bool, confidence: float,
    scope: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Every rate of a group of trial rows, each with its CI; ``scope`` names the row (its
    workload / dtype / layer / bit) for the fault space."""
    z = two_sided_z(confidence)
    parts = _strata_parts(group, pops, weighted)
    n = len(group)
    out: dict[str, float] = {"trials": float(n)}
    space = pops.fault_space(scope or {})
    out["population"] = space
    out["sampled_fraction"] = n / space if space and not math.isnan(space) else math.nan
    flags = {rate: group["outcome"].isin(outcomes) for rate, outcomes in RATES.items()}
    flags.update({rate: flag(group) for rate, flag in FLAG_RATES.items()})
    # each stratum's row positions in the group, once (not a pandas lookup per rate)
    positions = [group.index.get_indexer(r.index) for _, _, r in parts] if len(parts) > 1 else []
    for rate, hit in flags.items():
        if len(parts) == 1 and math.isinf(parts[0][1]):
            k = int(hit.sum())
            p = k / n if n else math.nan
            lo, hi = wilson_interval(k, n, confidence)
        elif len(parts) == 1:
            p, lo, hi = est.stratum_interval(parts[0][1], n, int(hit.sum()), z)  # enumerable
        else:
            hits = hit.to_numpy()
            p, lo, hi = est.weighted_interval(
                [(w, f, len(r), int(hits[pos].sum()))
                 for (w, f, r), pos in zip(parts, positions, strict=True)], z)
        out[f"{rate}_rate"] = p
        out[f"{rate}_ci_low"] = lo
        out[f"{rate}_ci_high"] = hi
    for rate, column in INPUT_RATES.items():
        p, lo, hi = est.cluster_interval(
            [(w, f, r[column].tolist(), r["inputs"].tolist()) for w, f, r in parts], z)
        out[f"per_input_{rate}_rate"] = p
        out[f"per_input_{rate}_ci_low"] = lo
        out[f"per_input_{rate}_ci_high"] = hi
    out["mean_accuracy"] = est.weighted_mean([(w, r["accuracy"].tolist()) for w, _, r in parts])
    out.update(deviation_columns(parts))
    return out


def deviation_columns(parts: list[tuple[float, float, pd.DataFrame]]) -> dict[str, float]:
    """The largest absolute output deviation from golden over a group's trials, and its
    stratum-weighted median (each trial weighs ``W_h / n_h``; DUE trials have none)."""
    values, weights = [], []
    for w, _, rows in parts:
        dev = pd.to_numeric(rows["max_logit_deviation"], errors="coerce").dropna()
        values += dev.tolist()
        weights += [w / len(rows)] * len(dev)
    if not values:
        return {"max_logit_deviation": math.nan, "median_logit_deviation": math.nan}
    order = np.argsort(values, kind="stable")
    v, cum = np.asarray(values)[order], np.cumsum(np.asarray(weights)[order])
    median = float(v[int(np.searchsorted(cum, cum[-1] / 2.0))])
    return {"max_logit_deviation": float(v[-1]), "median_logit_deviation": median}


def outcome_at(result: dict[str, Any], tolerance: float | None) -> str:
    """A trial's outcome class re-thresholded at SDC ``tolerance`` (None: as stored): an
    output deviation up to ``tolerance`` is masked; the top-1 change counts only on inputs
    that deviate by more (``critical_logit_deviation``). DUEs stay DUEs."""
    outcome = str(result["outcome"])
    deviation = result.get("max_logit_deviation")
    if tolerance is None or outcome == "due" or deviation is None:
        return outcome
    t = float(np.float32(tolerance))  # outputs are float32: compare as the trial did
    if float(result.get("critical_logit_deviation") or 0.0) > t:
        return "critical_sdc"
    return "sdc" if float(deviation) > t else "masked"


def trial_frame(records: list[tuple[dict[str, Any], dict[str, Any]]],
                tolerance: float | None = None) -> pd.DataFrame:
    """One row per (trial, variant): the baseline (``none``) and each mitigation; with
    ``tolerance``, outcomes re-thresholded there (:func:`outcome_at`)."""
    rows = []
    for index, (trial, result) in enumerate(records):
        base = {
            "trial": index,
            "workload": trial["workload"], "target": trial.get("target", ""),
            "dtype": trial["dtype"], "stratum": trial["stratum"],
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
                **base, "mitigation": name, "outcome": outcome_at(r, tolerance),
                "accuracy": r.get("accuracy", math.nan),
                "sdc_inputs": r.get("sdc_inputs", 0),
                "critical_inputs": r.get("critical_inputs", 0),
                "topk_changed_inputs": r.get("topk_changed_inputs", 0),
                "max_logit_deviation": r.get("max_logit_deviation", math.nan),
                "inputs": r.get("inputs", 0), "nodes_affected": r.get("nodes_affected", math.nan),
                "forward_seconds": r.get("forward_seconds", math.nan),
                "critical_by_degree": r.get("critical_by_degree"),
                "sdc_by_degree": r.get("sdc_by_degree"),
            })
    return pd.DataFrame(rows)


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """:func:`trial_frame` blocks of consecutive pages as one frame, its ``trial`` numbers
    counted across the pages (each block numbers its own rows from 0)."""
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    offset = 0
    for frame in frames:
        frame["trial"] += offset
        offset = int(frame["trial"].max()) + 1
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def grouped(
    df: pd.DataFrame, keys: list[str], populations: Populations, weighted: bool,
    confidence: float, extra: dict[str, Any] | None = None,
) -> pd.DataFrame:
    rows = []
    for values, group in df.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row.update(rate_columns(group, populations, weighted, confidence, row))
        rows.append(row)
    out = pd.DataFrame(rows)
    if extra and not out.empty:
        for col, fn in extra.items():
            out[col] = out.apply(fn, axis=1)
    return out


def rate_tables(
    df: pd.DataFrame, pops: Populations, weighted: bool, confidence: float, multi_target: bool,
    per_model_extra: dict[str, Any] | None = None,
) -> dict[str, pd.DataFrame]:
    """The rate tables of :data:`TABLE_KEYS` (a multi-target campaign's rows also name their
    target, and it has a ``per_target`` table)."""
    tables = {}
    for name, keys in TABLE_KEYS.items():
        if name == "per_target" and not multi_target:
            continue
        if multi_target and name in ("per_layer", "per_bit", "layer_bit"):
            keys = [keys[0], "target", *keys[1:]]
        frame = df[df["mitigation"] == "none"] if name == "layer_bit" else df
        tables[name] = grouped(frame, keys, pops, weighted, confidence,
                               extra=per_model_extra if name == "per_model" else None)
    return tables


def strata_table(pops: Populations, base: pd.DataFrame) -> pd.DataFrame:
    """One row per stratum: its scope, fault space (``population``), weight in campaign-level
    figures, enumeration frame (``inf``: independent draws) and trials — what re-weighting
    the trials needs after the fact (:mod:`~faultlab.workers.faults.tolerance`)."""
    counts = base.groupby("stratum").size()
    return pd.DataFrame([
        {"stratum": key, "workload": st.workload, "target": st.target, "dtype": st.dtype,
         "layer": st.layer, "bit": -1 if st.bit is None else st.bit,
         "population": st.population, "weight": st.weight, "frame": st.frame,
         "trials": int(counts.get(key, 0))}
        for key, st in pops.strata.items()
    ])


def degree_table(
    df: pd.DataFrame, meta: dict[str, Any], params: FaultParams, pops: Populations,
    weighted: bool,
) -> pd.DataFrame:
    """GNN: per-node critical-SDC and SDC rates by in-degree bucket, stratum-weighted, with
    cluster-aware intervals (a trial's nodes are one cluster)."""
    rows = []
    graph = {w["name"]: w for w in meta["workloads"] if w["kind"] == "graph"}
    if not graph:
        return pd.DataFrame()
    sub = df[df["workload"].isin(graph) & df["critical_by_degree"].notna()]
    edges = params.degree_bins
    labels = [f"<= {edges[0]}"] + [f"{a + 1}-{b}" for a, b in zip(edges, edges[1:], strict=False)]
    labels.append(f"> {edges[-1]}")
    z = two_sided_z(params.confidence)
    for (wl, mit), group in sub.groupby(["workload", "mitigation"], sort=True):
        parts = _strata_parts(group, pops, weighted)
        trials = len(group)
        for i, nodes in enumerate(graph[wl]["degree_counts"]):
            if nodes == 0:
                continue
            row: dict[str, Any] = {"workload": wl, "mitigation": mit, "degree": labels[i],
                                   "nodes": nodes, "trials": trials, "node_trials": nodes * trials}
            for rate, column in (("sdc", "sdc_by_degree"), ("critical_sdc", "critical_by_degree")):
                p, lo, hi = est.cluster_interval(
                    [(w, f, [int(v[i]) for v in r[column]], [nodes] * len(r)) for w, f, r in parts],
                    z)
                row.update({f"{rate}_rate": p, f"{rate}_ci_low": lo, f"{rate}_ci_high": hi})
            rows.append(row)
    return pd.DataFrame(rows)


#: The paired effects of the mitigation table: (column prefix, outcomes counted).
EFFECTS = ("failure", "critical_sdc", "sdc", "due")


def paired_effects(
    none: pd.DataFrame, arm: pd.DataFrame, pops: Populations, weighted: bool, z: float
) -> dict[str, float]:
    """Paired differences (arm − none) of each rate on the identical plan, their stratified
    Agresti–Min intervals and McNemar p-values, plus the discordant counts."""
    pair = none.merge(arm, on="trial", suffixes=("_none", ""))
    out: dict[str, float] = {}
    for rate in EFFECTS:
        before = pair["outcome_none"].isin(RATES[rate])
        after = pair["outcome"].isin(RATES[rate])
        fixed, broken = before & ~after, ~before & after
        parts = [(w, f, len(r), int(fixed[r.index].sum()), int(broken[r.index].sum()))
                 for w, f, r in _strata_parts(pair, pops, weighted)]
        d, lo, hi = est.paired_difference(parts, z)
        out.update({f"{rate}_difference": d, f"{rate}_difference_ci_low": lo,
                    f"{rate}_difference_ci_high": hi,
                    f"{rate}_mcnemar_p": est.mcnemar_p(int(fixed.sum()), int(broken.sum()))})
        if rate in ("critical_sdc", "sdc"):
            prefix = "" if rate == "critical_sdc" else "sdc_"
            out[f"{prefix}trials_fixed"] = int(fixed.sum())
            out[f"{prefix}trials_broken"] = int(broken.sum())
    return out


def mitigation_table(df: pd.DataFrame, meta: dict[str, Any], params: FaultParams,
                     populations: Populations, weighted: bool) -> pd.DataFrame:
    """A/B of each mitigation against no mitigation on the identical fault plan: rates, paired
    differences with intervals and McNemar p-values, golden accuracy and overhead."""
    if set(df["mitigation"]) == {"none"}:
        return pd.DataFrame()
    rows = []
    z = two_sided_z(params.confidence)
    overhead = meta.get("mitigation_overhead", {})
    for (wl, dtype), group in df.groupby(["workload", "dtype"], sort=True):
        scope = {"workload": wl, "dtype": dtype}
        none = group[group["mitigation"] == "none"]
        base = rate_columns(none, populations, weighted, params.confidence, scope)
        arms = overhead.get(wl, {}).get(dtype, {})
        for mit in [m.name for m in params.mitigations]:
            g = group[group["mitigation"] == mit]
            if g.empty:
                continue
            r = rate_columns(g, populations, weighted, params.confidence, scope)
            row: dict[str, Any] = {"workload": wl, "dtype": dtype, "mitigation": mit,
                                   "trials": len(g)}
            for rate in EFFECTS:
                row[f"{rate}_rate_none"] = base[f"{rate}_rate"]
                row.update({f"{rate}{c}": r[f"{rate}{c}"]
                            for c in ("_rate", "_ci_low", "_ci_high")})
                row[f"{rate}_reduction"] = _reduction(base[f"{rate}_rate"], r[f"{rate}_rate"])
            row.update(paired_effects(none, g, populations, weighted, z))
            row.update({
                "golden_accuracy": arms.get(mit, {}).get("accuracy"),
                "golden_accuracy_none": arms.get("none", {}).get("accuracy"),
                "overhead": arms.get(mit, {}).get("overhead"),
            })
            rows.append(row)
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
