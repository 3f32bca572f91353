"""Plots of a sparsity report: accuracy vs achieved sparsity, and the sensitivity heatmap."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from faultlab.report import Report


def _figure(width: float = 7.0, height: float = 4.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def accuracy_vs_sparsity(cells: pd.DataFrame, dense_accuracy: float | None) -> Any:
    """One line per (method, granularity, schedule) with the CI over seeds as error bars."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    prune = cells[cells["family"] == "prune"]
    for (method, gran, sched), group in prune.groupby(["method", "granularity", "schedule"], sort=False):
        group = group.sort_values("achieved_sparsity")
        acc = group["accuracy"].to_numpy(dtype=float)
        low = acc - group["accuracy_ci_low"].to_numpy(dtype=float)
        high = group["accuracy_ci_high"].to_numpy(dtype=float) - acc
        ax.errorbar(group["achieved_sparsity"], acc, yerr=[np.nan_to_num(low), np.nan_to_num(high)],
                    marker="o", capsize=3, label=f"{method} / {gran} / {sched}")
    other = cells[cells["family"].isin(["quant", "low_rank", "distill", "chain", "allocation"])]
    for _, row in other.iterrows():
        ax.scatter([row["achieved_sparsity"]], [row["accuracy"]], marker="x")
        ax.annotate(f"{row['method']}" + (f"@{row['level']:g}" if pd.notna(row["level"]) else ""),
                    (row["achieved_sparsity"], row["accuracy"]), fontsize=7)
    if dense_accuracy is not None:
        ax.axhline(dense_accuracy, color="grey", linestyle="--", linewidth=1, label="dense")
    ax.set_xlabel("achieved sparsity (fraction of weights removed)")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy vs sparsity (CI over seeds)")
    ax.legend(fontsize=7, loc="lower left")
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
    """``{"accuracy_vs_sparsity": fig, "sensitivity_heatmap": fig}`` (those the report supports)."""
    figures: dict[str, Any] = {}
    cells = report.tables.get("cells")
    if cells is not None and not cells.empty:
        figures["accuracy_vs_sparsity"] = accuracy_vs_sparsity(cells, report.summary.get("dense_accuracy"))
    sens = report.tables.get("sensitivity")
    if sens is not None and not sens.empty:
        figures["sensitivity_heatmap"] = sensitivity_heatmap(sens)
    return figures
