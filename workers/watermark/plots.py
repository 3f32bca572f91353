"""Plots of a watermark report: the frequency sensitivity heatmap and the robustness curves
(watermark and test accuracy against attack strength, with CIs over seeds)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from faultlab.report import Report


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def sensitivity_figure(table: pd.DataFrame) -> Figure:
    """Heatmap of log10 damage per 2-D frequency (DC at the centre) beside the K-means ranks."""
    height, width = int(table["height"].iloc[0]), int(table["width"].iloc[0])
    damage = np.full((height, width), np.nan)
    ranks = np.full((height, width), np.nan)
    for row in table.itertuples():
        for u, v in ((int(row.u), int(row.v)), ((-int(row.u)) % height, (-int(row.v)) % width)):
            damage[u, v] = np.log10(max(float(row.damage), 1e-12))
            ranks[u, v] = float(row.cluster_rank)
    fig = Figure(figsize=(9, 4))
    extent = (
        -(width // 2) - 0.5,
        width - width // 2 - 0.5,
        height - height // 2 - 0.5,
        -(height // 2) - 0.5,
    )
    for ax_index, (grid, title, cmap) in enumerate((
        (damage, "log10 task damage (mean KL)", "magma"),
        (ranks, "sensitivity cluster (0 = least)", "viridis"),
    )):
        ax = fig.add_subplot(1, 2, ax_index + 1)
        image = ax.imshow(np.fft.fftshift(grid), cmap=cmap, extent=extent)
        ax.set_title(title)
        ax.set_xlabel("horizontal frequency v")
        ax.set_ylabel("vertical frequency u")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle("Fourier perturbation sensitivity map")
    fig.tight_layout()
    return fig


def robustness_figure(rows: pd.DataFrame, breaks: pd.DataFrame, attack: str) -> Figure:
    """Watermark and test accuracy against strength for every scheme under one attack."""
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot(1, 1, 1)
    colours = dict(
        zip(rows["scheme"].unique(), ["C0", "C1", "C2", "C3", "C4", "C5", "C6"], strict=False)
    )
    unbroken: list[str] = []
    for scheme, group in rows.groupby("scheme", sort=False):
        group = group.sort_values("strength")
        colour = colours.get(scheme, "k")
        for column, style, what in (("wm_acc", "-o", "watermark"), ("test_acc", "--s", "test")):
            x = group["strength"].to_numpy(dtype=float)
            low = group[f"{column}_ci_low"].to_numpy(dtype=float).clip(0.0, 1.0)
            high = group[f"{column}_ci_high"].to_numpy(dtype=float).clip(0.0, 1.0)
            ax.fill_between(x, low, high, color=colour, alpha=0.12 if what == "test" else 0.2,
                            linewidth=0)
            ax.plot(x, group[column], style, color=colour, markersize=4,
                    label=f"{scheme} {what} acc")
        brk = breaks[(breaks["scheme"] == scheme) & (breaks["attack"] == attack)]
        if len(brk) and brk["break_strength"].notna().any():
            at = float(brk["break_strength"].iloc[0])
            ax.axvline(at, color=colour, linestyle=(0, (4, 2)), linewidth=2.0,
                       label=f"{scheme} breaks at {at:g}")
            ax.annotate("break", (at, 0.5), xytext=(4, 0), textcoords="offset points",
                        rotation=90, color=colour, fontsize=8, va="center")
        else:
            unbroken.append(str(scheme))
    strengths = rows["strength"].astype(float)
    if (strengths > 0).all() and strengths.max() / strengths.min() >= 100:
        ax.set_xscale("log")
    stronger = breaks[breaks["attack"] == attack]["stronger"]
    if len(stronger) and stronger.iloc[0] == "lower":
        ax.invert_xaxis()  # stronger attacks to the right
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"{attack}: {rows['knob'].iloc[0]} (stronger →)")
    ax.set_ylabel("accuracy (mean over seeds)")
    note = f"; not broken: {', '.join(unbroken)}" if unbroken else ""
    ax.set_title(f"Robustness under {attack}\n(bands: 95 % CI clipped to [0, 1]; dashed: "
                 f"break point{note})", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def tradeoff_figure(cells: pd.DataFrame) -> Figure:
    """Watermark accuracy against test accuracy over every attacked cell."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for scheme, group in cells.groupby("scheme", sort=False):
        ax.scatter(group["test_acc"], group["wm_acc"], s=14, alpha=0.7, label=str(scheme))
    ax.set_xlabel("test accuracy after attack")
    ax.set_ylabel("watermark (trigger) accuracy after attack")
    ax.set_title("Removal trade-off: every (attack, strength, seed)")
    ax.legend()
    fig.tight_layout()
    return fig


def plot(report: Report) -> dict[str, Figure]:
    """The report's figures by file name."""
    figures: dict[str, Figure] = {}
    sens = report.tables.get("sensitivity")
    if sens is not None and len(sens):
        figures["sensitivity_map"] = sensitivity_figure(sens)
    rows = report.tables.get("robustness")
    breaks = report.tables.get("break_points")
    if rows is not None and breaks is not None and len(rows):
        for attack, group in rows.groupby("attack", sort=False):
            figures[f"robustness_{_slug(str(attack))}"] = robustness_figure(
                group, breaks, str(attack)
            )
    cells = report.tables.get("cells")
    if cells is not None and len(cells):
        figures["tradeoff"] = tradeoff_figure(cells)
    return figures
