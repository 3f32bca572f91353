"""Statistics of training cells: linear-rate fits, CIs over seeds, paired comparisons.

* Linear rate (Xu et al., ICML 2021): gradient descent on a linearized GNN satisfies
  ``L(θ_t) − L* ≤ (1 − ηλ)^t (L(θ_0) − L*)``, so ``log L`` falls linearly in ``t`` while the
  loss is far above ``L*``. :func:`linear_rate` fits ``log L(θ_t) = a + r t`` by least
  squares up to the step the loss target is reached; ``r`` is the rate, R² how linear.
* Means carry Student-t intervals over seeds (:func:`faultlab.stats.mean_with_ci`).
* Comparisons are paired: variants ``a`` and ``b`` on the same dataset, recipe and seed
  (so the same labelled nodes). Differences get a paired t interval; ratios (speed-ups,
  time ratios) a t interval on the mean log-ratio, reported as a geometric mean
  ``exp(mean log(x_b / x_a))``.
* Rank agreement: Kendall's τ between the rankings of the linear variants and of their
  nonlinear counterparts by steps to the loss target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from faultlab.stats import mean_with_ci

ARCH = ("family", "depth", "width", "skip", "linear", "norm", "bias")
PAIR = ("dataset", "recipe", "seed")


def linear_rate(losses: list[float]) -> dict[str, float]:
    """Least-squares fit of ``log loss`` against the step: slope (the rate) and R²."""
    y = np.asarray(losses, dtype=float)
    steps = np.arange(len(y), dtype=float)
    keep = np.isfinite(y) & (y > 0)
    if keep.sum() < 3:
        return {"slope": math.nan, "r2": math.nan}
    fit = sps.linregress(steps[keep], np.log(y[keep]))
    r2 = float(fit.rvalue) ** 2 if math.isfinite(float(fit.rvalue)) else math.nan
    return {"slope": float(fit.slope), "r2": r2}


def censored_steps(row: pd.Series) -> float:
    """Steps to the loss target; a cell that never reached it (or diverged on the way)
    counts its budget + 1 (``epochs + 1``; ``steps + 1`` when the budget is not given)."""
    value = row["steps_to_target"]
    if value is not None and not pd.isna(value):
        return float(value)
    budget = row.get("epochs")
    return float(row["steps"] if budget is None or pd.isna(budget) else budget) + 1.0


def summarise(values: list[float], prefix: str) -> dict[str, float]:
    """``{prefix, prefix_ci_low, prefix_ci_high}`` of the finite values (t interval)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    ci = mean_with_ci(finite)
    return {prefix: ci["mean"], f"{prefix}_ci_low": ci["ci_low"],
            f"{prefix}_ci_high": ci["ci_high"]}


SUMMARY_METRICS = ("test_acc", "val_acc", "train_acc", "final_loss", "rate", "rate_r2",
                   "train_seconds", "time_to_accuracy_seconds")


def variant_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, recipe, variant): every metric's mean and CI over seeds."""
    rows = []
    for (dataset, recipe, variant), group in cells.groupby(["dataset", "recipe", "variant"],
                                                            sort=False):
        row: dict[str, Any] = {"dataset": dataset, "recipe": recipe, "variant": variant,
                               **{k: group[k].iloc[0] for k in ARCH}, "seeds": len(group)}
        row.update(summarise(group.apply(censored_steps, axis=1).tolist(), "steps_to_target"))
        row["reached_target"] = int(group["steps_to_target"].notna().sum())
        for metric in SUMMARY_METRICS:
            row.update(summarise(group[metric].tolist(), metric))
        rows.append(row)
    return pd.DataFrame(rows)


def _pairs(cells: pd.DataFrame, a: str, b: str, value: Callable[[pd.Series], float]
           ) -> list[tuple[float, float]]:
    index = {tuple(r[k] for k in PAIR) + (r["variant"],): r for _, r in cells.iterrows()}
    out = []
    for key, row in index.items():
        if key[-1] != a:
            continue
        other = index.get(key[:-1] + (b,))
        if other is not None:
            out.append((value(row), value(other)))
    return out


def paired_difference(pairs: list[tuple[float, float]]) -> dict[str, float]:
    """Mean of ``x_b − x_a`` with a paired t interval."""
    diffs = [y - x for x, y in pairs if math.isfinite(x) and math.isfinite(y)]
    ci = mean_with_ci(diffs)
    return {"estimate": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "n": float(len(diffs))}


def paired_ratio(pairs: list[tuple[float, float]]) -> dict[str, float]:
    """Geometric mean of ``x_a / x_b`` with a t interval on the mean log-ratio."""
    logs = [math.log(x / y) for x, y in pairs if x > 0 and y > 0
            and math.isfinite(x) and math.isfinite(y)]
    ci = mean_with_ci(logs)
    return {"estimate": math.exp(ci["mean"]) if logs else math.nan,
            "ci_low": math.exp(ci["ci_low"]) if logs else math.nan,
            "ci_high": math.exp(ci["ci_high"]) if logs else math.nan, "n": float(len(logs))}


def _counterparts(variants: pd.DataFrame, change: dict[str, Any], match: dict[str, Any]
                  ) -> list[tuple[str, str]]:
    """Pairs (a, b) of variant names where b is a with the fields of ``change`` set."""
    by_arch = {tuple(r[k] for k in ARCH): r["variant"] for _, r in variants.iterrows()}
    out = []
    for _, row in variants.iterrows():
        if any(row[k] != v for k, v in match.items()):
            continue
        arch = {k: row[k] for k in ARCH}
        target = {**arch, **change}
        other = by_arch.get(tuple(target[k] for k in ARCH))
        if other is not None and other != row["variant"]:
            out.append((row["variant"], other))
    return out


def _compare(cells: pd.DataFrame, name: str, pairs: list[tuple[str, str]], metric: str,
             how: str, out: Comparisons, rows: bool = True) -> None:
    """Adds one row per (dataset, recipe, pair) to ``out.rows`` (unless not ``rows``) and the
    figure pooled over every matched seed pair to ``out.pooled[name]``."""
    value: Callable[[pd.Series], float] = (
        censored_steps if metric == "steps_to_target" else (lambda r: float(r[metric])))
    stat_of = paired_ratio if how == "ratio" else paired_difference
    everything: list[tuple[float, float]] = []
    for (dataset, recipe), group in cells.groupby(["dataset", "recipe"], sort=False):
        for a, b in pairs:
            matched = _pairs(group, a, b, value)
            if matched:
                everything += matched
                if rows:
                        out.rows.append({"comparison": name, "dataset": dataset,
                                     "recipe": recipe, "a": a, "b": b, "metric": metric,
                                     "statistic": how, **stat_of(matched)})
    if everything:
        out.pooled[name] = stat_of(everything)


@dataclass
class Comparisons:
    """The comparison table's rows and, per comparison, the figure over all its pairs."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    pooled: dict[str, dict[str, float]] = field(default_factory=dict)


def comparisons(cells: pd.DataFrame) -> Comparisons:
    """Skip vs no skip, shallowest vs deepest, linear vs nonlinear (steps-to-target ratios
    ``a / b``: > 1 means ``b`` is faster), and SGC vs the 2-layer GCN (test-accuracy
    difference ``SGC − GCN``; training-time ratio ``GCN / SGC``, precomputation counted)."""
    out = Comparisons()
    variants = cells.drop_duplicates("variant")
    gnn = variants[variants["family"] != "sgc"]
    depths = sorted(int(d) for d in gnn["depth"].unique())
    for skip in ("residual", "initial_residual", "jk"):
        pairs = _counterparts(gnn, {"skip": skip}, {"skip": "none"})
        _compare(cells, f"skip:{skip}", pairs, "steps_to_target", "ratio", out)
        for depth in depths if len(depths) > 1 and pairs else []:  # the speed-up by depth
            at = _counterparts(gnn, {"skip": skip}, {"skip": "none", "depth": depth})
            _compare(cells, f"skip:{skip}@d{depth}", at, "steps_to_target", "ratio", out,
                     rows=False)
    if len(depths) > 1:
        name = f"depth:{depths[0]}->{depths[-1]}"
        pairs = _counterparts(gnn, {"depth": depths[-1]}, {"depth": depths[0]})
        _compare(cells, name, pairs, "steps_to_target", "ratio", out)
        for skip in sorted(gnn["skip"].unique()) if gnn["skip"].nunique() > 1 else []:
            pairs = _counterparts(gnn, {"depth": depths[-1]}, {"depth": depths[0], "skip": skip})
            _compare(cells, f"{name}@{skip}", pairs, "steps_to_target", "ratio", out,
                     rows=False)
    pairs = _counterparts(gnn, {"linear": False}, {"linear": True})
    _compare(cells, "linear->nonlinear", pairs, "steps_to_target", "ratio", out)
    gcn2 = gnn[(gnn["family"] == "gcn") & (gnn["depth"] == 2) & (gnn["skip"] == "none")
               & (~gnn["linear"].astype(bool)) & (gnn["norm"] == "none")]
    sgc_pairs = [(g, s) for g in gcn2["variant"]
                 for s in variants[variants["family"] == "sgc"]["variant"]]
    _compare(cells, "sgc-gcn:test_acc", sgc_pairs, "test_acc", "difference", out)
    _compare(cells, "sgc-gcn:time", sgc_pairs, "train_seconds", "ratio", out)
    return out


def rank_agreement(summary: pd.DataFrame) -> pd.DataFrame:
    """Kendall τ, per dataset and recipe, between the linear variants' ranking by mean steps
    to target and their nonlinear counterparts' (Xu et al.: nonlinear GNNs behave like
    their linearized versions)."""
    rows = []
    gnn = summary[summary["family"] != "sgc"]
    for (dataset, recipe), group in gnn.groupby(["dataset", "recipe"], sort=False):
        key = [k for k in ARCH if k != "linear"]
        linear = group[group["linear"].astype(bool)].set_index(key)["steps_to_target"]
        nonlinear = group[~group["linear"].astype(bool)].set_index(key)["steps_to_target"]
        common = linear.index.intersection(nonlinear.index)
        if len(common) < 3:
            continue
        tau = sps.kendalltau(linear.loc[common].to_numpy(), nonlinear.loc[common].to_numpy())
        rows.append({"dataset": dataset, "recipe": recipe, "variants": len(common),
                     "kendall_tau": float(tau.statistic), "p_value": float(tau.pvalue)})
    return pd.DataFrame(rows)


__all__ = ["Comparisons", "comparisons", "linear_rate", "paired_difference", "paired_ratio",
           "rank_agreement", "variant_summary"]
