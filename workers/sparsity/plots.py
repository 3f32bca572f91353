"""Plots of a sparsity report: accuracy vs achieved sparsity with its Pareto front, realized vs
theoretical speedup, and the sensitivity heatmap.

The Pareto front is the set of cells no other cell beats on both accuracy and achieved
sparsity (ties kept); the theoretical speedup is the report's FLOP/MAC ratio, the realized one
the measured dense ÷ compressed latency, so points under the diagonal lose to overheads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from faultlab.report import Report


def _figure(width: float = 7.0, height: float = 4.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def accuracy_vs_sparsity(cells: pd.DataFrame, dense_accuracy: float | None) -> Any:
    """One line per pruning curve — colour = method, marker = granularity, dashed = gradual —
    with the CI over seeds as error bars; quantization, low-rank, distillation, chain and
    allocation cells as labelled points."""
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    palette = [f"C{i}" for i in range(10)]
    methods = list(dict.fromkeys(cells["method"]))
    colour = {m: palette[i % len(palette)] for i, m in enumerate(methods)}
    markers = {"layer": "o", "global": "s"}
    prune = cells[cells["family"] == "prune"]
    for (method, gran, sched), group in prune.groupby(
        ["method", "granularity", "schedule"], sort=False
    ):
        group = group.sort_values("achieved_sparsity")
        acc = group["accuracy"].to_numpy(dtype=float)
        low = acc - group["accuracy_ci_low"].to_numpy(dtype=float)
        high = group["accuracy_ci_high"].to_numpy(dtype=float) - acc
        ax.errorbar(group["achieved_sparsity"], acc, yerr=[np.nan_to_num(low), np.nan_to_num(high)],
                    color=colour[method], marker=markers.get(gran, "^"), markersize=4, capsize=2,
                    linestyle="--" if sched == "gradual" else "-", linewidth=1.2,
                    label=f"{method} / {gran} / {sched}")
    other = cells[cells["family"].isin(["quant", "low_rank", "distill", "chain", "allocation"])]
    for (family, method), group in other.groupby(["family", "method"], sort=False):
        label = f"{method} ({family})" if family == "allocation" else method
        ax.scatter(group["achieved_sparsity"], group["accuracy"], marker="x", s=30,
                   color=colour[method] if family != "allocation" else "black", label=label)
        for _, row in group.iterrows():
            tag = (
                row["granularity"]
                if family == "allocation"
                else (f"{row['level']:g}" if pd.notna(row["level"]) else "")
            )
            ax.annotate(tag, (row["achieved_sparsity"], row["accuracy"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    front = pareto_front(cells)
    if len(front):
        ax.step(front["achieved_sparsity"], front["accuracy"], where="post", color="0.35",
                linewidth=2.2, alpha=0.5, zorder=0, label="Pareto front")
    if dense_accuracy is not None:
        ax.axhline(dense_accuracy, color="grey", linestyle=":", linewidth=1, label="dense")
    ax.set_xlabel("achieved sparsity (fraction of weights removed)")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy vs sparsity (error bars: CI over seeds)")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.subplots_adjust(right=0.72)
    return fig


def pareto_front(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells not dominated in (achieved sparsity, accuracy), by increasing sparsity."""
    points = cells.dropna(subset=["achieved_sparsity", "accuracy"]).sort_values(
        ["achieved_sparsity", "accuracy"], ascending=[False, False])
    keep, best = [], -np.inf
    for index, accuracy in zip(points.index, points["accuracy"], strict=True):
        if accuracy > best:
            keep.append(index)
            best = accuracy
    return points.loc[keep].sort_values("achieved_sparsity")


def speedup_figure(cells: pd.DataFrame) -> Any:
    """Realized (measured latency) against theoretical (MAC ratio) speedup, per method."""
    rows = cells.dropna(subset=["theoretical_speedup", "realized_speedup"])
    fig = _figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for (family, method), group in rows.groupby(["family", "method"], sort=False):
        ax.scatter(group["theoretical_speedup"], group["realized_speedup"], s=22,
                   label=f"{method} ({family})")
    top = float(max(rows["theoretical_speedup"].max(), rows["realized_speedup"].max(), 1.0))
    ax.plot([0.5, top * 1.1], [0.5, top * 1.1], "k:", linewidth=1, label="realized = theoretical")
    ax.axhline(1.0, color="0.6", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("theoretical speedup (dense MACs ÷ effective MACs)")
    ax.set_ylabel("realized speedup (measured latency)")
    ax.set_title("Realized vs theoretical speedup")
    ax.legend(fontsize=6, loc="upper left")
    return fig


def sensitivity_heatmap(sens: pd.DataFrame) -> Any:
    """Accuracy drop of pruning one layer (or channel group) at a time, layers × levels."""
    pivot = sens.pivot_table(index="target", columns="level", values="accuracy_drop", sort=False)
    fig = _figure(7.0, max(2.5, 0.35 * len(pivot) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(pivot.to_numpy(dtype=float), aspect="auto", cmap="magma_r")
    ax.set_xticks(range(len(pivot.columns)), [f"{c:g}" for c in pivot.columns])
    ax.set_yticks(range(len(pivot.index)), list(pivot.index), fontsize=7)
    ax.set_xlabel("level pruned (this layer only)")
    ax.set_title(f"Layer sensitivity ({sens['method'].iloc[0]}): accuracy drop")
    fig.colorbar(image, ax=ax, label="accuracy drop")
    return fig


def plot(report: Report) -> dict[str, Any]:
    """``accuracy_vs_sparsity``, ``speedup`` and ``sensitivity_heatmap`` (those the report
    supports)."""
    figures: dict[str, Any] = {}
    cells = report.tables.get("cells")
    if cells is not None and not cells.empty:
        figures["accuracy_vs_sparsity"] = accuracy_vs_sparsity(
            cells, report.summary.get("dense_accuracy")
        )
        if {"theoretical_speedup", "realized_speedup"} <= set(cells.columns) and cells[
                ["theoretical_speedup", "realized_speedup"]].notna().all(axis=1).any():
            figures["speedup"] = speedup_figure(cells)
    sens = report.tables.get("sensitivity")
    if sens is not None and not sens.empty:
        figures["sensitivity_heatmap"] = sensitivity_heatmap(sens)
    return figures
