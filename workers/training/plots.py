"""Plots of a training report: learning curves per variant with bands over seeds, and the
steps-to-target of every variant with its CI."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from faultlab.report import Report


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def curves(curves: pd.DataFrame, metric: str, log: bool) -> Any:
    """One panel per (dataset, recipe): the mean of ``metric`` over seeds per variant, with
    a band from the lowest to the highest seed (points are aligned by step)."""
    panels = list(curves.groupby(["dataset", "recipe"], sort=False))
    fig = _figure(6.0 * min(len(panels), 3), 4.0 * ((len(panels) + 2) // 3))
    for i, ((dataset, recipe), panel) in enumerate(panels):
        ax = fig.add_subplot((len(panels) + 2) // 3, min(len(panels), 3), i + 1)
        for j, (variant, group) in enumerate(panel.groupby("variant", sort=False)):
            by_step = group.groupby("step")[metric]
            mean, low, high = by_step.mean(), by_step.min(), by_step.max()
            colour = f"C{j % 10}"
            ax.plot(mean.index, mean.to_numpy(dtype=float), color=colour, linewidth=1.0,
                    label=str(variant))
            ax.fill_between(mean.index, low.to_numpy(dtype=float), high.to_numpy(dtype=float),
                            color=colour, alpha=0.2, linewidth=0)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(f"{dataset} / {recipe}", fontsize=9)
        ax.legend(fontsize=5)
    fig.tight_layout()
    return fig


def ci_bars(summary: pd.DataFrame, column: str, xlabel: str, width: float = 9.0) -> Any:
    """Mean ``column`` per (dataset, recipe, variant) row of ``summary`` with its CI over
    seeds (``<column>_ci_low`` / ``_ci_high``) as horizontal bars."""
    fig = _figure(width, max(3.0, 0.22 * len(summary) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{r.dataset} / {r.recipe} / {r.variant}" for r in summary.itertuples()]
    mean = summary[column].to_numpy(dtype=float)
    low = np.nan_to_num(mean - summary[f"{column}_ci_low"].to_numpy(dtype=float))
    high = np.nan_to_num(summary[f"{column}_ci_high"].to_numpy(dtype=float) - mean)
    ax.barh(range(len(labels)), mean, xerr=[low, high], capsize=2, color="C0")
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    return fig


def steps_to_target(summary: pd.DataFrame) -> Any:
    """Mean steps to the loss target per variant with its CI over seeds."""
    return ci_bars(summary, "steps_to_target",
                   "steps to the loss target (CI over seeds; unreached: budget + 1)")


def plot(report: Report) -> dict[str, Any]:
    """``{"loss_curves", "accuracy_curves", "steps_to_target"}`` (those the report supports);
    another workload's report (``summary["workload"]``) gets that workload's figures."""
    if report.summary.get("workload", "graph") != "graph":
        from faultlab.workers.training.workloads import workload

        return workload(str(report.summary["workload"])).plots(report)
    figures = curve_figures(report)
    summary = report.tables.get("summary")
    if summary is not None and not summary.empty:
        figures["steps_to_target"] = steps_to_target(summary)
    return figures


def curve_figures(report: Report) -> dict[str, Any]:
    """``loss_curves`` (log scale) and ``accuracy_curves`` (test accuracy) of a training
    report's ``curves`` table, every workload's; none without curves."""
    table = report.tables.get("curves")
    if table is None or table.empty:
        return {}
    return {"loss_curves": curves(table, "loss", log=True),
            "accuracy_curves": curves(table, "test_acc", log=False)}
