"""Figures of a fault campaign report (matplotlib; no torch).

* ``heatmap_<workload>_<dtype>`` — layer × bit vulnerability (SDC and critical-SDC rates);
* ``per_layer`` — SDC and critical-SDC rate per layer with Wilson CIs;
* ``per_model`` — critical-SDC rate per workload (model × dataset), with and without each
  mitigation, on a log scale (resilience differs by orders of magnitude across GNNs);
* ``by_degree`` — GNN node-level SDC rates by in-degree bucket.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from faultlab.report import Report


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def heatmaps(report: Report) -> dict[str, Figure]:
    table = report.tables.get("layer_bit")
    figures: dict[str, Figure] = {}
    if table is None or table.empty:
        return figures
    table = table[table["bit"] >= 0]
    for (wl, dtype), group in table.groupby(["workload", "dtype"], sort=True):
        layers = list(dict.fromkeys(group["layer"]))
        bits = sorted(group["bit"].unique(), reverse=True)
        if len(bits) < 2:
            continue
        fig = Figure(figsize=(1.2 + 0.28 * len(bits), 1.6 + 0.55 * len(layers) * 2))
        axes = fig.subplots(2, 1)
        for ax, rate, title in [(axes[0], "sdc_rate", "SDC rate"),
                                (axes[1], "critical_sdc_rate", "critical-SDC rate")]:
            grid = np.full((len(layers), len(bits)), np.nan)
            for row in group.itertuples():
                grid[layers.index(row.layer), bits.index(row.bit)] = getattr(row, rate)
            im = ax.imshow(grid, aspect="auto", cmap="magma_r", vmin=0.0, vmax=1.0)
            ax.set_yticks(range(len(layers)), layers, fontsize=7)
            ax.set_xticks(range(len(bits)), [str(b) for b in bits], fontsize=6)
            ax.set_xlabel("bit (31 = sign for fp32)")
            ax.set_title(f"{title} — {wl} [{dtype}]", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.03)
        fig.tight_layout()
        figures[f"heatmap_{_slug(wl)}_{dtype}"] = fig
    return figures


def _bars(ax: object, labels: list[str], rate: pd.Series, low: pd.Series, high: pd.Series,
          offset: float, width: float, name: str) -> None:
    x = np.arange(len(labels)) + offset
    err = np.vstack([(rate - low).clip(lower=0).to_numpy(), (high - rate).clip(lower=0).to_numpy()])
    ax.bar(x, rate.to_numpy(), width, yerr=err, capsize=2, label=name)  # type: ignore[attr-defined]


def per_layer(report: Report) -> Figure | None:
    table = report.tables.get("per_layer")
    if table is None or table.empty:
        return None
    base = table[table["mitigation"] == "none"]
    labels = [f"{r.workload}:{r.layer}" if base["workload"].nunique() > 1 else r.layer
              for r in base.itertuples()]
    fig = Figure(figsize=(max(5.0, 0.5 * len(labels)), 3.8))
    ax = fig.subplots()
    _bars(ax, labels, base["sdc_rate"], base["sdc_ci_low"], base["sdc_ci_high"], -0.2, 0.4, "SDC")
    _bars(ax, labels, base["critical_sdc_rate"], base["critical_sdc_ci_low"],
          base["critical_sdc_ci_high"], 0.2, 0.4, "critical SDC")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("rate (95 % Wilson CI)")
    ax.legend(fontsize=8)
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


def plot(report: Report) -> dict[str, Figure]:
    """Every figure the report supports, by file stem."""
    figures = heatmaps(report)
    for name, make in [("per_layer", per_layer), ("per_model", per_model),
                       ("by_degree", by_degree)]:
        fig = make(report)
        if fig is not None:
            figures[name] = fig
    return figures
