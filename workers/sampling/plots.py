"""Plots of a sampling report: RMSE vs budget, CI coverage vs budget, DAIC iterations."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from faultlab.report import Report  # noqa: E402


def _rmse_vs_budget(report: Report) -> Figure:
    table = report.tables["replay"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for sampler, rows in table.groupby("sampler", sort=False):
        rows = rows.sort_values("budget")
        ax.errorbar(rows["budget"], rows["rmse"],
                    yerr=[rows["rmse"] - rows["rmse_ci_low"], rows["rmse_ci_high"] - rows["rmse"]],
                    marker="o", capsize=2, label=str(sampler))
    truth = report.summary.get("true_accuracy")
    size = report.summary.get("pool_size")
    if truth is not None and size:
        budgets = np.array(sorted(table["budget"].unique()), dtype=float)
        theory = [math.sqrt(truth * (1 - truth) * (size - n) / ((size - 1) * n)) for n in budgets]
        ax.plot(budgets, theory, "k--", linewidth=1, label="SRS (exact)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("labels (budget)")
    ax.set_ylabel("RMSE of the accuracy estimate")
    ax.set_title("RMSE vs budget (95 % CI over repetitions)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _coverage_vs_budget(report: Report) -> Figure:
    table = report.tables["replay"]
    nominal = float(report.summary.get("confidence", 0.95))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for sampler, rows in table.groupby("sampler", sort=False):
        rows = rows.sort_values("budget")
        ax.errorbar(rows["budget"], rows["coverage"],
                    yerr=[rows["coverage"] - rows["coverage_ci_low"],
                          rows["coverage_ci_high"] - rows["coverage"]],
                    marker="o", capsize=2, label=str(sampler))
    ax.axhline(nominal, color="k", linestyle="--", linewidth=1, label=f"nominal {nominal:.0%}")
    ax.set_xscale("log")
    ax.set_xlabel("labels (budget)")
    ax.set_ylabel("CI coverage")
    ax.set_title("Coverage of the confidence interval vs budget (Wilson CI)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, alpha=0.3)
    return fig


def _daic_iterations(report: Report) -> Figure:
    table = report.tables["daic_summary"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, rows in table.groupby("arm", sort=False):
        rows = rows.sort_values("iteration")
        line = ax.errorbar(rows["iteration"], rows["operational_accuracy"],
                           yerr=[rows["operational_accuracy"] - rows["operational_ci_low"],
                                 rows["operational_ci_high"] - rows["operational_accuracy"]],
                           marker="o", capsize=2, label=f"{arm}: true")
        ax.plot(rows["iteration"], rows["estimate"], linestyle=":", marker="x",
                color=line[0].get_color(), label=f"{arm}: estimate")
    ax.set_xticks(sorted(int(i) for i in table["iteration"].unique()))
    ax.set_xlabel("DAIC iteration (model after k fine-tunings)")
    ax.set_ylabel("operational accuracy")
    ax.set_title("DAIC: true operational accuracy and its estimate per iteration")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return fig


def plot(report: Report) -> dict[str, Figure]:
    """``rmse_vs_budget`` and ``coverage_vs_budget`` (replay), ``daic_iterations`` (improve)."""
    figures: dict[str, Figure] = {}
    if "replay" in report.tables and not report.tables["replay"].empty:
        figures["rmse_vs_budget"] = _rmse_vs_budget(report)
        figures["coverage_vs_budget"] = _coverage_vs_budget(report)
    if "daic_summary" in report.tables and not report.tables["daic_summary"].empty:
        figures["daic_iterations"] = _daic_iterations(report)
    return figures
