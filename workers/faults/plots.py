"""Figures of a fault campaign report (matplotlib; no torch).

* ``heatmap_<workload>_<dtype>`` — layer × bit vulnerability (SDC and critical-SDC rates),
  layers in network order; cells with fewer than :data:`LOW_COUNT` trials are hatched and show
  their count (their colour is not a rate one can read);
* ``per_layer`` — SDC, critical-SDC and DUE rates per layer in network order with Wilson CIs,
  on a linear scale and (second panel) a log scale where small critical rates stay visible;
* ``mitigation`` — each mitigation's paired effect (mitigated − none) on every rate, with the
  paired interval (Agresti–Min) the report carries;
* ``per_model`` — critical-SDC rate per workload (model × dataset), with and without each
  mitigation, on a log scale (resilience differs by orders of magnitude across GNNs);
* ``by_degree`` — GNN node-level SDC rates by in-degree bucket;
* ``per_target`` — a multi-target campaign's SDC, critical-SDC, DUE and top-k-changed rates per
  target (weight, activation, message, …) with their intervals.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from faultlab.report import Report

#: Heatmap cells with fewer trials than this are hatched and labelled with their count.
LOW_COUNT = 5
#: Log-scale panels show zero rates at this floor (CIs keep their upper end).
LOG_FLOOR = 1e-4


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def network_order(report: Report, layers: list[str]) -> list[str]:
    """``layers`` in the order the model runs them (the summary's ``layer_order``); names the
    summary does not list keep their relative order at the end."""
    order = {name: i for i, name in enumerate(report.summary.get("layer_order") or [])}
    return sorted(layers, key=lambda name: order.get(name, len(order)))


def _heat_panel(fig: Figure, ax: Any, group: pd.DataFrame, layers: list[str], bits: list[int],
                rate: str, title: str) -> None:
    grid = np.full((len(layers), len(bits)), np.nan)
    counts = np.zeros((len(layers), len(bits)))
    for row in group.itertuples():
        i, j = layers.index(row.layer), bits.index(row.bit)
        grid[i, j], counts[i, j] = getattr(row, rate), row.trials
    im = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0.0, vmax=1.0)
    for i, j in zip(*np.nonzero((counts > 0) & (counts < LOW_COUNT)), strict=True):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                               edgecolor="0.55", linewidth=0))
        ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=5,
                color="tab:blue")
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xticks(range(len(bits)), [str(b) for b in bits], fontsize=6)
    ax.set_xlabel(f"bit (31 = sign for fp32); hatched: < {LOW_COUNT} trials, number = trials")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)


def heatmaps(report: Report) -> dict[str, Figure]:
    table = report.tables.get("layer_bit")
    figures: dict[str, Figure] = {}
    if table is None or table.empty:
        return figures
    table = table[table["bit"] >= 0]
    for (wl, dtype), group in table.groupby(["workload", "dtype"], sort=True):
        layers = network_order(report, list(dict.fromkeys(group["layer"])))
        bits = sorted(group["bit"].unique(), reverse=True)
        if len(bits) < 2:
            continue
        fig = Figure(figsize=(1.6 + 0.28 * len(bits), 1.8 + 0.55 * len(layers) * 2))
        axes = fig.subplots(2, 1)
        for ax, rate, title in [(axes[0], "sdc_rate", "SDC rate"),
                                (axes[1], "critical_sdc_rate", "critical-SDC rate")]:
            _heat_panel(fig, ax, group, layers, bits, rate, f"{title} — {wl} [{dtype}]")
        fig.tight_layout()
        figures[f"heatmap_{_slug(wl)}_{dtype}"] = fig
    return figures


#: The rates drawn per layer: (column stem, legend name).
RATE_BARS = (("sdc", "SDC"), ("critical_sdc", "critical SDC"), ("due", "DUE"))


def _bars(ax: Any, labels: list[str], rate: pd.Series, low: pd.Series, high: pd.Series,
          offset: float, width: float, name: str) -> None:
    x = np.arange(len(labels)) + offset
    err = np.vstack([(rate - low).clip(lower=0).to_numpy(), (high - rate).clip(lower=0).to_numpy()])
    ax.bar(x, rate.to_numpy(), width, yerr=err, capsize=2, label=name)


def per_layer(report: Report, scales: tuple[str, ...] = ("linear", "log")) -> Figure | None:
    """SDC, critical-SDC and DUE rates per layer in network order, one panel per scale."""
    table = report.tables.get("per_layer")
    if table is None or table.empty:
        return None
    base = table[table["mitigation"] == "none"]
    order = {name: i for i, name in enumerate(network_order(report, list(base["layer"])))}
    base = base.sort_values("layer", key=lambda col: col.map(order), kind="stable")
    labels = [f"{r.workload}:{r.layer}" if base["workload"].nunique() > 1 else r.layer
              for r in base.itertuples()]
    fig = Figure(figsize=(max(5.0, 0.6 * len(labels)), 3.2 * len(scales) + 0.8))
    axes = np.atleast_1d(fig.subplots(len(scales), 1, sharex=True))
    for ax, scale in zip(axes, scales, strict=True):
        floor = LOG_FLOOR if scale == "log" else 0.0
        for offset, (stem, name) in zip((-0.27, 0.0, 0.27), RATE_BARS, strict=True):
            _bars(ax, labels, base[f"{stem}_rate"].clip(lower=floor),
                  base[f"{stem}_ci_low"].clip(lower=floor),
                  base[f"{stem}_ci_high"].clip(lower=floor), offset, 0.27, name)
        ax.set_yscale(scale)
        ax.set_ylabel(f"rate ({scale}, 95 % Wilson CI)")
    axes[0].legend(fontsize=7)
    axes[-1].set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    axes[0].set_title("Rates per layer, in network order")
    fig.tight_layout()
    return fig


def mitigation(report: Report) -> Figure | None:
    """Paired effect of each mitigation (mitigated − none) per rate, with its interval."""
    table = report.tables.get("mitigation")
    if table is None or table.empty:
        return None
    rates = [(stem, name) for stem, name in RATE_BARS + (("failure", "failure"),)
             if f"{stem}_difference_ci_low" in table.columns]
    if not rates:
        return None
    fig = Figure(figsize=(6.5, 1.2 + 0.5 * len(table) * len(rates)))
    ax = fig.subplots()
    labels, y = [], 0
    for row in table.to_dict("records"):
        for stem, name in rates:
            d, lo, hi = (float(row[f"{stem}_difference{c}"]) for c in ("", "_ci_low", "_ci_high"))
            ax.errorbar([d], [y], xerr=[[max(d - lo, 0)], [max(hi - d, 0)]], fmt="o", capsize=3,
                        color="C0" if hi < 0 else ("C3" if lo > 0 else "0.4"))
            labels.append(f"{row['mitigation']} [{row['workload']} {row['dtype']}]: {name}")
            y += 1
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("mitigated − unprotected rate (paired, 95 % CI; < 0 = the mitigation helps)")
    ax.set_title("Mitigation effects on the identical fault plan")
    fig.tight_layout()
    return fig


def per_model(report: Report) -> Figure | None:
    table = report.tables.get("per_model")
    if table is None or table.empty or table["workload"].nunique() < 2:
        return None
    workloads = list(dict.fromkeys(table["workload"]))
    arms = list(dict.fromkeys(table["mitigation"]))
    fig = Figure(figsize=(max(6.0, 0.7 * len(workloads)), 4.0))
    ax = fig.subplots()
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        sub = table[table["mitigation"] == arm].set_index("workload").reindex(workloads)
        floor = 1e-5  # log scale: show zero rates at the floor, CIs keep their upper end
        rate = sub["critical_sdc_rate"].clip(lower=floor)
        _bars(ax, workloads, rate, sub["critical_sdc_ci_low"].clip(lower=floor),
              sub["critical_sdc_ci_high"].clip(lower=floor), -0.4 + width * (i + 0.5), width, arm)
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)), workloads, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("critical-SDC rate (log, 95 % CI)")
    ax.legend(fontsize=8, title="mitigation")
    fig.tight_layout()
    return fig


def by_degree(report: Report) -> Figure | None:
    table = report.tables.get("by_degree")
    if table is None or table.empty:
        return None
    base = table[table["mitigation"] == "none"]
    fig = Figure(figsize=(6.0, 3.6))
    ax = fig.subplots()
    for wl, group in base.groupby("workload", sort=True):
        ax.errorbar(group["degree"], group["sdc_rate"],
                    yerr=[group["sdc_rate"] - group["sdc_ci_low"],
                          group["sdc_ci_high"] - group["sdc_rate"]],
                    marker="o", capsize=2, label=str(wl))
    ax.set_xlabel("node in-degree")
    ax.set_ylabel("per-node SDC rate (95 % CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def per_target(report: Report) -> Figure | None:
    """Rates per target of a multi-target campaign (unmitigated arm), one group per target."""
    table = report.tables.get("per_target")
    if table is None or table.empty:
        return None
    base = table[table["mitigation"] == "none"]
    labels = [f"{r.workload}:{r.target}" if base["workload"].nunique() > 1 else str(r.target)
              for r in base.itertuples()]
    stems = RATE_BARS + (("topk_changed", "top-k changed"),)
    fig = Figure(figsize=(max(5.0, 1.2 * len(labels)), 3.6))
    ax = fig.subplots()
    width = 0.8 / len(stems)
    for i, (stem, name) in enumerate(stems):
        if f"{stem}_rate" in base.columns:
            _bars(ax, labels, base[f"{stem}_rate"], base[f"{stem}_ci_low"],
                  base[f"{stem}_ci_high"], -0.4 + width * (i + 0.5), width, name)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("rate (95 % CI)")
    ax.set_title("Rates per fault target")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot(report: Report) -> dict[str, Figure]:
    """Every figure the report supports, by file stem."""
    figures = heatmaps(report)
    for name, make in [("per_layer", per_layer), ("per_model", per_model),
                       ("mitigation", mitigation), ("by_degree", by_degree),
                       ("per_target", per_target)]:
        fig = make(report)
        if fig is not None:
            figures[name] = fig
    return figures
