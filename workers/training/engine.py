"""The training engine (campaign kind ``training``).

A trial is one training run: (model variant × recipe × dataset × seed). ``prepare`` loads
the zoo graphs once; ``plan`` returns every cell in round 0; ``run_shard`` trains each cell
(:func:`~faultlab.workers.training.loop.train_cell`) and returns its learning curves, final
metrics and speed figures; ``aggregate`` builds the cells, curves, per-variant summary,
comparisons and rank-agreement tables (:mod:`~faultlab.workers.training.analysis`).

The claims it tests: Xu, Zhang, Jegelka, Kawaguchi (ICML 2021) — linearized GNNs converge
at a linear rate, ``L(θ_t) − L* ≤ (1 − ηλ)^t (L(θ_0) − L*)``, faster with skip connections
and depth, and nonlinear GNNs rank like their linearized versions; Wu et al. (ICML 2019) —
SGC, ``softmax(S^K X W)`` with ``S^K X`` precomputed, matches a 2-layer GCN's accuracy at a
fraction of its training time. See docs/training.md.

Shards run on the task's device: :meth:`TrainingEngine.to_device` copies the context's data
there once per worker (:mod:`~faultlab.workers.training.device`), and each cell builds its
model on the CPU under its seed, moves it to its data's device and trains there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.report import Report
from faultlab.spec import CampaignSpec
from faultlab.workers import progress
from faultlab.workers.engine import Engine, Prepared, TrialRecord
from faultlab.workers.training import analysis
from faultlab.workers.training.device import context_on
from faultlab.workers.training.loop import CURVE_KEYS, train_cell
from faultlab.workers.training.params import TrainingDataset, TrainingParams
from faultlab.workers.training.workloads import sweep_workload, workload_of_trial
from faultlab.workers.training.workloads.base import load_training_dataset
from faultlab.workers.zoo import GraphData, dataset_entries

#: Stands in for a model digest in trial keys: every cell trains its model from scratch,
#: and the trial itself holds the whole architecture and recipe.
UNTRAINED = digest("training:untrained")


@dataclass
class TrainingContext:
    """What every shard needs: the graphs by label, and the intra-op threads of a shard."""

    graphs: dict[str, GraphData]
    threads: int = 1


def _load_graph(entry: TrainingDataset, index: int) -> GraphData:
    data: GraphData = load_training_dataset(entry.name, entry.options,
                                            f"training.datasets.{index}", "graph", GraphData)
    return data


class TrainingEngine(Engine[TrainingParams]):
    """Training campaigns (see the module docstring)."""

    kind = "training"
    version = "1"
    params_type = TrainingParams
    streams_progress = True

    def validate(self, spec: CampaignSpec) -> None:
        params = self.params(spec)
        sweep = sweep_workload(params)  # a workload with its own sweep (image, ...)
        if sweep is not None:
            _check_cells(spec, sweep.cells(params))
            sweep.validate(spec, params)
            return
        graphs = sorted(n for n, e in dataset_entries().items() if e.task == "graph")
        for i, entry in enumerate(params.datasets):
            if entry.name not in graphs:
                raise SpecError(f"training.datasets.{i}.name",
                                f"unknown graph dataset {entry.name!r}", graphs)
        cells = (len(params.all_variants()) * len(params.recipes) * len(params.datasets)
                 * params.seeds)
        if cells > spec.execution.max_trials:
            raise SpecError("execution.max_trials",
                            f"the sweep has {cells} cells, above the limit "
                            f"{spec.execution.max_trials}")

    def max_rounds(self, spec: CampaignSpec) -> int | None:
        return 1

    def prepare(self, spec: CampaignSpec) -> Prepared:
        params = self.params(spec)
        if (sweep := sweep_workload(params)) is not None:
            return sweep.prepare(spec, params)
        graphs = {d.resolved_label(): _load_graph(d, i) for i, d in enumerate(params.datasets)}
        datasets = {
            label: {"digest": g.digest, "nodes": int(g.data.num_nodes),
                    "edges": int(g.data.edge_index.size(1)), "classes": g.num_classes,
                    "features": g.num_features, "train": len(g.split("train")),
                    "test": len(g.split("test"))}
            for label, g in graphs.items()
        }
        meta = {"model_digest": UNTRAINED,
                "dataset_digest": digest({k: v["digest"] for k, v in datasets.items()}),
                "datasets": datasets}
        threads = max(1, int(spec.execution.num_cpus))
        return Prepared(TrainingContext(graphs, threads), meta)

    def plan(self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
             previous: list[TrialRecord]) -> list[dict[str, Any]]:
        if round_index > 0:
            return []
        params = self.params(spec)
        if (sweep := sweep_workload(params)) is not None:
            return sweep.plan(spec, params, meta)
        targets = params.targets.model_dump(mode="json")
        trials = []
        for entry in params.datasets:
            label = entry.resolved_label()
            for recipe in params.recipes:
                recipe_dict = {**recipe.model_dump(mode="json"), "name": recipe.label()}
                for variant in params.all_variants():
                    trials += [
                        {"dataset": label, "dataset_digest": meta["datasets"][label]["digest"],
                         "variant": variant, "recipe": recipe_dict, "targets": targets,
                         "seed": spec.seed + s, "curve_points": params.curve_points}
                        for s in range(params.seeds)
                    ]
        return trials

    def to_device(self, context: Any, device: torch.device) -> Any:
        """The context's data (graphs, images or the hyperspectral scene) copied to
        ``device``, once per worker (:func:`~faultlab.workers.training.device.context_on`; the
        given context and the zoo's cached datasets are unchanged)."""
        return context_on(context, device)

    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ctx: TrainingContext = context
        previous = torch.get_num_threads()
        torch.set_num_threads(ctx.threads)
        try:
            return [self._run_cell(ctx, i, trial) for i, trial in enumerate(trials)]
        finally:
            torch.set_num_threads(previous)

    def _run_cell(self, ctx: TrainingContext, index: int, trial: dict[str, Any]) -> dict[str, Any]:
        def on_point(point: dict[str, float]) -> None:
            progress.emit(index, {"curve": point})

        try:
            if "workload" in trial:  # graph trials predate workloads and carry none
                return workload_of_trial(trial).train(ctx, trial, on_point)
            return train_cell(ctx.graphs[trial["dataset"]], trial["variant"], trial["recipe"],
                              trial["targets"], int(trial["seed"]), int(trial["curve_points"]),
                              on_point)
        except Exception as exc:  # noqa: BLE001 - a cell that cannot train is an outcome
            # (deterministic: retrying the shard would fail again), recorded and reported.
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}

    def aggregate(self, spec: CampaignSpec, meta: dict[str, Any],
                  records: list[TrialRecord]) -> Report:
        if (sweep := sweep_workload(self.params(spec))) is not None:
            return sweep.aggregate(self, spec, meta, records)
        tables: dict[str, pd.DataFrame] = {"cells": _cells_table(records)}
        trained = [r for r in records if r.result.get("status") != "error"]
        summary: dict[str, Any] = {"cells": len(records), "errors": len(records) - len(trained)}
        if len(trained) < len(records):
            summary["first_error"] = next(r.result["error"] for r in records
                                          if r.result.get("status") == "error")
        cells = tables["cells"]
        ok = cells[cells["status"] != "error"] if not cells.empty else cells
        if not ok.empty:
            tables["curves"] = _curves_table(trained)
            tables["summary"] = analysis.variant_summary(ok)
            found = analysis.comparisons(ok)
            tables["comparisons"] = pd.DataFrame(found.rows)
            tables["rank_agreement"] = analysis.rank_agreement(tables["summary"])
            summary.update(_figures(ok, found, tables["rank_agreement"]))
        return Report(kind=self.kind, summary=summary, tables=tables, primary="summary"
                      if "summary" in tables else "cells",
                      provenance=self.provenance(spec, meta, datasets=meta["datasets"]))


def _check_cells(spec: CampaignSpec, cells: int) -> None:
    if cells > spec.execution.max_trials:
        raise SpecError("execution.max_trials", f"the sweep has {cells} cells, above the "
                        f"limit {spec.execution.max_trials}")


CELL_COLUMNS = ("status", "steps", "labelled", "parameters", "initial_loss", "final_loss",
                "min_loss", "train_acc", "val_acc", "test_acc", "target_loss",
                "steps_to_target", "steps_to_accuracy", "time_to_accuracy_seconds", "rate",
                "rate_r2", "precompute_seconds", "train_seconds", "error")


def _cells_table(records: list[TrialRecord]) -> pd.DataFrame:
    rows = []
    for r in records:
        v = r.trial["variant"]
        rows.append({"dataset": r.trial["dataset"], "recipe": r.trial["recipe"]["name"],
                     "variant": v["name"], **{k: v[k] for k in analysis.ARCH},
                     "seed": r.trial["seed"], "epochs": r.trial["recipe"]["epochs"],
                     "loss_target": r.trial["recipe"]["loss_target"],
                     **{k: r.result.get(k) for k in CELL_COLUMNS}, "key": r.key})
    return pd.DataFrame(rows)


def _curves_table(records: list[TrialRecord]) -> pd.DataFrame:
    frames = []
    for r in records:
        curve = pd.DataFrame({k: r.result["curve"][k] for k in CURVE_KEYS})
        curve.insert(0, "seed", r.trial["seed"])
        curve.insert(0, "variant", r.trial["variant"]["name"])
        curve.insert(0, "recipe", r.trial["recipe"]["name"])
        curve.insert(0, "dataset", r.trial["dataset"])
        frames.append(curve)
    return pd.concat(frames, ignore_index=True)


def _figures(cells: pd.DataFrame, found: analysis.Comparisons,
             ranks: pd.DataFrame) -> dict[str, Any]:
    """The headline figures of the summary, each with its CI over seed pairs."""
    out: dict[str, Any] = {}
    for name, stat in found.pooled.items():
        out[name] = {"estimate": stat["estimate"], "ci": [stat["ci_low"], stat["ci_high"]],
                     "pairs": int(stat["n"])}
    if not ranks.empty:
        out["linear_nonlinear_rank_agreement"] = float(ranks["kendall_tau"].mean())
    linear = cells[cells["linear"].astype(bool) & (cells["family"] != "sgc")]
    if not linear.empty:
        out["linear_rate_r2_median"] = float(linear["rate_r2"].median())
    missed = cells[cells["status"] == "target_not_reached"]
    out["target_not_reached"] = len(missed)
    if len(missed):
        first = missed.iloc[0]
        out["target_message"] = (
            f"{len(missed)} of {len(cells)} cells never reached their loss target within "
            f"their epoch budget (e.g. {first['variant']} / {first['recipe']} on "
            f"{first['dataset']}, seed {first['seed']}: best loss {first['min_loss']:.4g} > "
            f"target {first['loss_target']:.4g}); raise epochs or lr, or lower the target")
    return out


__all__ = ["TrainingContext", "TrainingEngine"]
