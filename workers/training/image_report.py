"""The image workload's report: cells, curves, per-variant summary with t intervals over
seeds, paired comparisons, the frequency channels' selection map, and its plots.

Comparisons are paired over seeds (same dataset and seed, hence the same initialisation,
validation split and batch order up to the augmentation draws): every recipe against the
baseline recipe on the same variant (``recipe:<name>-<baseline>``), every variant against
the baseline variant under the same recipe (``variant:<name>-<baseline>``); the figure is
the mean test-accuracy difference (``name − baseline``) with a paired t interval
(:func:`~faultlab.workers.training.analysis.paired_difference`), per (dataset, recipe or
variant) in the ``comparisons`` table and pooled over all pairs in the summary. The
``channels`` table holds, per frequency variant and DCT channel, the share of cells that
selected it and the mean learned gate probability (Xu et al., CVPR 2020, report that
low frequencies of Y dominate): ``frequency:<variant>:y_share`` is the share of selected
channels that are Y's, ``…:low_share`` the share with ``u + v < 4``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from faultlab.report import Report
from faultlab.workers.engine import Engine, TrialRecord
from faultlab.workers.training.analysis import paired_difference, summarise
from faultlab.workers.training.frequency import BLOCK, CHANNELS, COMPONENTS, channel_name
from faultlab.workers.training.image_params import ImageParams
from faultlab.workers.training.loop import CURVE_KEYS

CELL_COLUMNS = ("status", "steps", "labelled", "parameters", "initial_loss", "final_loss",
                "min_loss", "train_acc", "val_acc", "test_acc", "test_loss", "train_seconds",
                "input_values", "input_bytes", "input_ratio", "error")
SUMMARY_METRICS = ("test_acc", "val_acc", "train_acc", "final_loss", "train_seconds")
LOW_FREQUENCY = 4
"""``u + v`` below this counts as a low frequency."""


def cells_table(records: list[TrialRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        v = r.trial["variant"]
        rows.append({"dataset": r.trial["dataset"], "recipe": r.trial["recipe"]["name"],
                     "variant": v["name"], "model": v["model"], "input": v["input"]["kind"],
                     "channels": v["input"]["channels"] if v["input"]["kind"] == "frequency"
                     else None, "seed": r.trial["seed"], "epochs": r.trial["recipe"]["epochs"],
                     **{k: r.result.get(k) for k in CELL_COLUMNS}, "key": r.key})
    return pd.DataFrame(rows)


def curves_table(records: list[TrialRecord]) -> pd.DataFrame:
    frames = []
    for r in records:
        curve = pd.DataFrame({k: r.result["curve"][k] for k in CURVE_KEYS})
        for name, value in (("seed", r.trial["seed"]), ("variant", r.trial["variant"]["name"]),
                            ("recipe", r.trial["recipe"]["name"]),
                            ("dataset", r.trial["dataset"])):
            curve.insert(0, name, value)
        frames.append(curve)
    return pd.concat(frames, ignore_index=True)


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (dataset, recipe, variant), group in cells.groupby(["dataset", "recipe", "variant"],
                                                            sort=False):
        row: dict[str, Any] = {"dataset": dataset, "recipe": recipe, "variant": variant,
                               "input": group["input"].iloc[0], "seeds": len(group),
                               "input_values": int(group["input_values"].iloc[0]),
                               "input_ratio": float(group["input_ratio"].iloc[0])}
        for metric in SUMMARY_METRICS:
            row.update(summarise(group[metric].tolist(), metric))
        rows.append(row)
    return pd.DataFrame(rows)


def _paired(cells: pd.DataFrame, axis: str, fixed: str, baseline: str,
            rows: list[dict[str, Any]], pooled: dict[str, dict[str, float]]) -> None:
    """``axis`` values vs ``baseline`` at equal ``fixed``, dataset and seed."""
    index = {(r["dataset"], r[fixed], r["seed"], r[axis]): float(r["test_acc"])
             for _, r in cells.iterrows()}
    for other in dict.fromkeys(cells[axis]):
        if other == baseline:
            continue
        name, everything = f"{axis}:{other}-{baseline}", []
        for (dataset, level), group in cells.groupby(["dataset", fixed], sort=False):
            pairs = [(index[(dataset, level, s, baseline)], index[(dataset, level, s, other)])
                     for s in group["seed"].unique()
                     if (dataset, level, s, baseline) in index
                     and (dataset, level, s, other) in index]
            if pairs:
                everything += pairs
                rows.append({"comparison": name, "dataset": dataset, fixed: level,
                             "a": baseline, "b": other, "metric": "test_acc",
                             "statistic": "difference", **paired_difference(pairs)})
        if everything:
            pooled[name] = paired_difference(everything)


def channels_table(records: list[TrialRecord]) -> pd.DataFrame:
    """Per frequency variant (and dataset) and channel: selection share, gate probability."""
    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if "gate_probabilities" in r.result:
            groups.setdefault((r.trial["dataset"], r.trial["variant"]["name"]), []).append(
                r.result)
    for (dataset, variant), results in groups.items():
        chosen = np.zeros(CHANNELS)
        for res in results:
            chosen[res["selected"]] += 1
        gates = np.mean([res["gate_probabilities"] for res in results], axis=0)
        for c in range(CHANNELS):
            component, rest = divmod(c, BLOCK * BLOCK)
            rows.append({"dataset": dataset, "variant": variant, "channel": c,
                         "name": channel_name(c), "component": COMPONENTS[component],
                         "u": rest // BLOCK, "v": rest % BLOCK,
                         "selected_share": chosen[c] / len(results),
                         "gate_probability": float(gates[c]), "cells": len(results)})
    return pd.DataFrame(rows)


def _channel_figures(table: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (dataset, variant), group in table.groupby(["dataset", "variant"], sort=False):
        weight = group["selected_share"]
        total = float(weight.sum())
        y = float(weight[group["component"] == "Y"].sum())
        low = float(weight[(group["u"] + group["v"]) < LOW_FREQUENCY].sum())
        prefix = f"frequency:{variant}" + ("" if table["dataset"].nunique() == 1
                                           else f"@{dataset}")
        out[f"{prefix}:y_share"] = y / total if total else float("nan")
        out[f"{prefix}:low_share"] = low / total if total else float("nan")
    return out


def aggregate(engine: Engine[Any], spec: Any, meta: dict[str, Any],
              records: list[TrialRecord], params: ImageParams) -> Report:
    """The report (see the module docstring); ``summary["workload"] == "image"``."""
    tables: dict[str, pd.DataFrame] = {"cells": cells_table(records)}
    trained = [r for r in records if r.result.get("status") not in ("error", "diverged")]
    summary: dict[str, Any] = {"workload": "image", "cells": len(records),
                               "errors": sum(r.result.get("status") == "error"
                                             for r in records),
                               "diverged": sum(r.result.get("status") == "diverged"
                                               for r in records)}
    if summary["errors"]:
        summary["first_error"] = next(r.result["error"] for r in records
                                      if r.result.get("status") == "error")
    if trained:
        cells = cells_table(trained)
        tables["curves"] = curves_table(trained)
        tables["summary"] = summary_table(cells)
        rows: list[dict[str, Any]] = []
        pooled: dict[str, dict[str, float]] = {}
        recipe = params.baseline_recipe or params.recipes[0].label()
        variant = params.baseline_variant or params.all_variants()[0]["name"]
        _paired(cells, "recipe", "variant", recipe, rows, pooled)
        _paired(cells, "variant", "recipe", variant, rows, pooled)
        tables["comparisons"] = pd.DataFrame(rows)
        summary.update({name: {"estimate": s["estimate"], "ci": [s["ci_low"], s["ci_high"]],
                               "pairs": int(s["n"])} for name, s in pooled.items()})
        summary["baseline_recipe"], summary["baseline_variant"] = recipe, variant
        channels = channels_table(trained)
        if not channels.empty:
            tables["channels"] = channels
            summary.update(_channel_figures(channels))
    return Report(kind=engine.kind, summary=summary, tables=tables,
                  primary="summary" if "summary" in tables else "cells",
                  provenance=engine.provenance(spec, meta, datasets=meta["datasets"]))


def channel_heatmap(table: pd.DataFrame) -> Any:
    """One row per frequency variant: Y, Cb, Cr panels of 8×8 (u down, v across), colour =
    share of cells that selected the channel."""
    from matplotlib.figure import Figure

    groups = list(table.groupby(["dataset", "variant"], sort=False))
    fig = Figure(figsize=(9.0, 3.0 * len(groups)))
    for i, ((dataset, variant), group) in enumerate(groups):
        for j, component in enumerate(COMPONENTS):
            ax = fig.add_subplot(len(groups), 3, 3 * i + j + 1)
            part = group[group["component"] == component].sort_values("channel")
            grid = part["selected_share"].to_numpy(dtype=float).reshape(BLOCK, BLOCK)
            image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_title(f"{variant} / {dataset}: {component}", fontsize=8)
            ax.set_xlabel("v (horizontal frequency)", fontsize=7)
            ax.set_ylabel("u (vertical frequency)", fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046, label="selected share")
    fig.tight_layout()
    return fig


def accuracy_bars(summary: pd.DataFrame) -> Any:
    """Mean test accuracy per (dataset, recipe, variant) with its CI over seeds."""
    from faultlab.workers.training.plots import ci_bars

    return ci_bars(summary, "test_acc", "test accuracy (95 % t interval over seeds)", 8.0)


def plots(report: Report) -> dict[str, Any]:
    """``accuracy_curves``, ``loss_curves``, ``test_accuracy`` and ``channel_selection``
    (those the report supports)."""
    from faultlab.workers.training.plots import curve_figures

    figures = curve_figures(report)
    summary = report.tables.get("summary")
    if summary is not None and not summary.empty:
        figures["test_accuracy"] = accuracy_bars(summary)
    channels = report.tables.get("channels")
    if channels is not None and not channels.empty:
        figures["channel_selection"] = channel_heatmap(channels)
    return figures


__all__ = ["aggregate", "channels_table", "plots"]
