"""The hyperspectral workload's report and plots.

Tables: ``cells`` (one row per model × labels per class × seed), ``summary`` (OA, AA, κ per
model and labels per class: mean and Student-t 95 % interval over seeds), ``comparisons``
(per labels per class: ``gan − cnn``, ``gan_crf − gan`` and ``gan_crf − cnn``, paired over
seeds — the same seed draws the same labelled pixels for every model), ``curves``
(training loss; the GAN's is the discriminator's) and ``maps`` (the ground truth and each
model's classification map at the fewest labels, first seed). The summary's figures
``hsi_gan_gain``, ``hsi_crf_gain`` and ``hsi_gan_crf_gain`` (the whole framework against
the CNN) are the overall-accuracy gains at the fewest labels per class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from faultlab.report import Report
from faultlab.workers.engine import Engine, TrialRecord
from faultlab.workers.training.hyperspectral.metrics import (
    FIGURES,
    RANGES,
    over_seeds,
    paired_gain,
)

CELL_COLUMNS = ("status", "oa", "aa", "kappa", "before_crf_oa", "before_crf_aa",
                "before_crf_kappa", "labelled", "test_pixels", "parameters", "final_loss",
                "train_seconds", "crf_seconds", "error")
GAINS = {"gan": ("gan", "cnn"), "crf": ("gan_crf", "gan"), "gan_crf": ("gan_crf", "cnn")}
"""Summary figure ``hsi_<name>_gain`` → (treated, baseline) models."""


def cells_table(records: list[TrialRecord]) -> pd.DataFrame:
    rows = [{"dataset": r.trial["dataset"], "model": r.trial["variant"]["name"],
             "labels_per_class": r.trial["recipe"]["labels_per_class"], "seed": r.trial["seed"],
             **{k: r.result.get(k) for k in CELL_COLUMNS}, "key": r.key} for r in records]
    return pd.DataFrame(rows)


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (model, labels), group in cells.groupby(["model", "labels_per_class"], sort=False):
        row: dict[str, Any] = {"model": model, "labels_per_class": labels,
                               "seeds": len(group)}
        for fig in FIGURES:
            stat = over_seeds(group[fig].astype(float).tolist(), bounds=RANGES[fig])
            row.update({fig: stat["mean"], f"{fig}_ci_low": stat["ci_low"],
                        f"{fig}_ci_high": stat["ci_high"]})
        rows.append(row)
    return pd.DataFrame(rows)


def comparisons_table(cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for labels, group in cells.groupby("labels_per_class"):
        by_model = {m: g.set_index("seed") for m, g in group.groupby("model")}
        for name, (treated, base) in GAINS.items():
            if treated not in by_model or base not in by_model:
                continue
            for fig in FIGURES:
                stat = paired_gain(by_model[treated][fig].astype(float).to_dict(),
                                   by_model[base][fig].astype(float).to_dict())
                rows.append({"comparison": f"{treated}-{base}", "gain": name,
                             "labels_per_class": labels, "metric": fig,
                             "estimate": stat["mean"], "ci_low": stat["ci_low"],
                             "ci_high": stat["ci_high"], "pairs": int(stat["n"])})
    return pd.DataFrame(rows)


def _curves_table(records: list[TrialRecord]) -> pd.DataFrame:
    frames = [pd.DataFrame({"model": r.trial["variant"]["name"],
                            "labels_per_class": r.trial["recipe"]["labels_per_class"],
                            "seed": r.trial["seed"], "step": r.result["curve"]["step"],
                            "loss": r.result["curve"]["loss"]}) for r in records]
    return pd.concat(frames, ignore_index=True)


def _maps_table(records: list[TrialRecord], info: dict[str, Any]) -> pd.DataFrame:
    height, width = info["height"], info["width"]
    rows, cols = np.divmod(np.arange(height * width), width)
    table = pd.DataFrame({"row": rows, "col": cols, "truth": info["truth"]})
    fewest = min(r.trial["recipe"]["labels_per_class"] for r in records)
    first: dict[str, TrialRecord] = {}
    for r in sorted(records, key=lambda r: r.trial["seed"]):
        if r.trial["recipe"]["labels_per_class"] == fewest:
            first.setdefault(r.trial["variant"]["name"], r)
    for model, r in first.items():
        table[model] = r.result["map"]
    return table


def _figures(comparisons: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if comparisons.empty:
        return out
    fewest = comparisons["labels_per_class"].min()
    for labels, group in comparisons[comparisons["metric"] == "oa"].groupby("labels_per_class"):
        for _, row in group.iterrows():
            stat = {"estimate": row["estimate"], "ci": [row["ci_low"], row["ci_high"]],
                    "pairs": int(row["pairs"]), "labels_per_class": int(labels)}
            out[f"hsi_{row['gain']}_gain:labels{labels}"] = stat
            if labels == fewest:
                out[f"hsi_{row['gain']}_gain"] = stat
    return out


def aggregate(engine: Engine[Any], spec: Any, meta: dict[str, Any],
              records: list[TrialRecord]) -> Report:
    cells = cells_table(records)
    trained = [r for r in records if r.result.get("status") != "error"]
    summary: dict[str, Any] = {"workload": "hyperspectral", "cells": len(records),
                               "errors": len(records) - len(trained)}
    if len(trained) < len(records):
        summary["first_error"] = next(r.result.get("error") for r in records
                                      if r.result.get("status") == "error")
    tables: dict[str, pd.DataFrame] = {"cells": cells}
    if trained:
        ok = cells[cells["status"] != "error"]
        tables["summary"] = summary_table(ok)
        tables["comparisons"] = comparisons_table(ok)
        tables["curves"] = _curves_table(trained)
        info = next(iter(meta["datasets"].values()))
        if "truth" in info:
            tables["maps"] = _maps_table(trained, info)
        summary.update(_figures(tables["comparisons"]))
    datasets = {k: {f: v for f, v in d.items() if f != "truth"}
                for k, d in meta["datasets"].items()}
    return Report(kind="training", summary=summary, tables=tables,
                  primary="summary" if "summary" in tables else "cells",
                  provenance=engine.provenance(spec, meta, datasets=datasets))


def plots(report: Report) -> dict[str, Any]:
    """``accuracy`` (OA with CIs vs labels per class) and ``maps`` (classification maps)."""
    from matplotlib.figure import Figure

    figures: dict[str, Any] = {}
    summary = report.tables.get("summary")
    if summary is not None and not summary.empty:
        fig = Figure(figsize=(5.5, 3.5))
        ax = fig.add_subplot()
        for model, group in summary.groupby("model", sort=False):
            g = group.sort_values("labels_per_class")
            err = np.nan_to_num(np.vstack([g["oa"] - g["oa_ci_low"], g["oa_ci_high"] - g["oa"]]))
            ax.errorbar(g["labels_per_class"], g["oa"], yerr=err, marker="o", capsize=3,
                        label=str(model))
        ax.set_xlabel("labelled pixels per class")
        ax.set_ylabel("overall accuracy (95 % CI over seeds)")
        ax.legend()
        fig.tight_layout()
        figures["accuracy"] = fig
    maps = report.tables.get("maps")
    if maps is not None and not maps.empty:
        figures["maps"] = _maps_figure(maps)
    return figures


def _maps_figure(maps: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    height, width = int(maps["row"].max()) + 1, int(maps["col"].max()) + 1
    panels = [c for c in maps.columns if c not in ("row", "col")]
    fig = Figure(figsize=(2.6 * len(panels), 2.8))
    classes = int(maps["truth"].max()) + 1
    known = maps["truth"].to_numpy() >= 0
    for i, name in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        values = maps[name].to_numpy().astype(float)
        values[~known] = np.nan
        ax.imshow(values.reshape(height, width), cmap="tab20", vmin=0, vmax=max(classes, 20) - 1,
                  interpolation="nearest")
        title = str(name)
        if name != "truth":
            acc = float(np.mean(maps[name].to_numpy()[known] == maps["truth"].to_numpy()[known]))
            title += f" ({acc:.1%} of all pixels)"
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


__all__ = ["aggregate", "cells_table", "comparisons_table", "plots", "summary_table"]
