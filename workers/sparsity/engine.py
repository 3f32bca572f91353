"""The sparsity / compression engine (campaign kind ``sparsity``).

``validate`` checks the model structure (layer names, channel groups, layer types a structured
method cannot handle, transform chains); ``prepare`` trains/loads the dense model once and
computes its baseline (accuracy, counts, MACs), the calibration sample, the prunable layers
and coupled channel groups, and — for composition — the fault engine's context; ``plan``
returns the sweep, the sensitivity scan and the composed fault trials in round 0, the
allocation comparison (from the sensitivity records) and further adaptive fault rounds after;
``run_shard`` applies each cell's transforms (with fine-tuning and the cubic schedule) to a
copy of the dense model and measures it; ``aggregate`` builds the tables of docs/sparsity.md.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.report import Report
from faultlab.spec import CampaignSpec
from faultlab.workers.engine import Engine, Prepared, TrialRecord
from faultlab.workers.sparsity import compose
from faultlab.workers.sparsity import report as reporting
from faultlab.workers.sparsity.intervals import pack_mask
from faultlab.workers.sparsity.metrics import (
    count_macs,
    latency_setting,
    measure_latencies,
    model_stats,
)
from faultlab.workers.sparsity.params import STRUCTURED, SparsityParams
from faultlab.workers.sparsity.planning import allocation_cells, sensitivity_trials, sweep_cells
from faultlab.workers.sparsity.selection import SelectionSplit, selection_split
from faultlab.workers.sparsity.validation import validate_structure
from faultlab.workers.transforms import run_transform
from faultlab.workers.transforms._common import calibration_batch, weight_layers
from faultlab.workers.transforms._training import finetune
from faultlab.workers.zoo import Dataset, GraphData, load_dataset, trained_model
from faultlab.workers.zoo.training import forward_batches

EVAL_CHUNK = 1024


@dataclass
class SparsityContext:
    """What every shard needs (travels once per campaign through Ray's object store)."""

    params: SparsityParams
    model: nn.Module
    data: Dataset
    eval_inputs: list[tuple[Any, ...]]
    eval_ids: torch.Tensor | None
    labels: torch.Tensor
    latency_inputs: tuple[Any, ...]
    latency_per: int
    threads: int = 1
    """Intra-op threads of a shard: the CPUs a shard task gets (``execution.num_cpus``); more
    threads than CPUs make PyTorch's OpenMP pool spin (a GCN forward went from 4 ms to 250 ms
    on a busy 2-core machine)."""
    faults: Any = None
    """The fault engine's context for composed fault trials (None without composition)."""
    device: str = "cpu"
    """Where the shards run (:meth:`SparsityEngine.to_device`): cells, scans and latency."""
    selection: SelectionSplit | None = None
    """The validation split the sensitivity scan scores (None without a scan)."""


def _latency_inputs(data: Dataset, batch: int) -> tuple[tuple[Any, ...], int]:
    if isinstance(data, GraphData):
        return (data.data.x, data.data.edge_index), 1
    x, _ = data.split("test")
    if len(x) < batch:
        x = x.repeat((batch + len(x) - 1) // len(x), *([1] * (x.dim() - 1)))
    return (x[:batch],), batch


def _correct_mask(model: nn.Module, ctx: SparsityContext,
                  split: SelectionSplit | None = None) -> torch.Tensor:
    """Which evaluation inputs (or, with ``split``, which of its inputs) the model classifies
    correctly (for the paired tests)."""
    inputs, ids, labels = ((ctx.eval_inputs, ctx.eval_ids, ctx.labels) if split is None
                           else (split.inputs, split.ids, split.labels))
    with torch.no_grad():
        outs = [model(*args) for args in inputs]
    out = torch.cat(outs) if ids is None else outs[0][ids]
    if out.is_quantized:
        out = out.dequantize()
    return out.argmax(1) == labels


def _selected(model: nn.Module, ctx: SparsityContext) -> tuple[int, int]:
    """Correct and total on the validation split (the sensitivity scan's inputs)."""
    if ctx.selection is None:
        raise RuntimeError("no validation split: prepare builds it whenever a scan is planned")
    return int(_correct_mask(model, ctx, ctx.selection).sum()), int(ctx.selection.labels.numel())


def _selection_meta(model: nn.Module, ctx: SparsityContext) -> dict[str, Any]:
    """The validation split's provenance and the dense model's accuracy on it (the origin of
    every sensitivity drop)."""
    correct, total = _selected(model, ctx)
    split = ctx.selection.provenance if ctx.selection is not None else {}
    return {**split, "split": "validation", "dense_correct": correct,
            "dense_accuracy": correct / max(total, 1)}


def _targets(params: SparsityParams, meta: dict[str, Any]) -> list[str]:
    scan = params.sensitivity
    if scan is None:
        return []
    pool = meta["groups"] if scan.method in STRUCTURED else meta["layers"]
    names = [entry["name"] for entry in pool]
    return names if scan.layers is None else [n for n in names if n in set(scan.layers)]


class SparsityEngine(Engine[SparsityParams]):
    """Sparsity / compression campaigns (see the module docstring)."""

    kind = "sparsity"
    version = "2"
    params_type = SparsityParams

    # -- validate -------------------------------------------------------------------------
    def validate(self, spec: CampaignSpec) -> None:
        params = self.params(spec)
        validate_structure(spec, params)
        if params.compose is not None:
            compose.validate_faults(spec, params)

    # -- prepare --------------------------------------------------------------------------
    def prepare(self, spec: CampaignSpec) -> Prepared:
        params = self.params(spec)
        data = load_dataset(spec.dataset)
        trained, model_digest = trained_model(spec.model, data)
        model = copy.deepcopy(trained).eval()
        eval_inputs, eval_ids, labels = forward_batches(
            data, spec.dataset.split, spec.dataset.size, EVAL_CHUNK
        )
        latency_inputs, latency_per = _latency_inputs(data, params.latency.batch)
        ctx = SparsityContext(
            params, model, data, eval_inputs, eval_ids, labels, latency_inputs, latency_per,
            threads=max(1, int(spec.execution.num_cpus)),
        )
        dense_mask = _correct_mask(model, ctx)
        correct = int(dense_mask.sum())
        stats = model_stats(model)
        macs = count_macs(model, latency_inputs, latency_per)
        layers = [
            {"name": layer.name, "size": layer.weight.numel()} for layer in weight_layers(model)
        ]
        scan = params.sensitivity
        groups: list[dict[str, Any]] = []
        structured = any(m in STRUCTURED for m in params.methods)
        if structured or (scan is not None and scan.method in STRUCTURED):
            from faultlab.workers.transforms.channel_pruning import channel_groups

            groups = [
                {"name": g.root, "size": g.channels, "members": list(g.members)}
                for g in channel_groups(copy.deepcopy(model), data)
            ]
        _, _, calib_nodes = calibration_batch(data, params.calibration_samples, spec.seed)
        meta: dict[str, Any] = {
            "model_digest": model_digest,
            "dataset_digest": data.digest,
            "task": data.kind,
            "dense": {
                "correct": correct, "total": int(labels.numel()),
                "accuracy": correct / max(int(labels.numel()), 1),
                "correct_mask": pack_mask(dense_mask.tolist()),
                **stats.to_dict(),
                "macs": macs.dense, "macs_effective": macs.effective,
                "aggregation_macs": macs.aggregation,
            },
            "layers": layers,
            "groups": groups,
            "calibration": {
                "samples": params.calibration_samples, "seed": spec.seed,
                "node_ids_digest": None if calib_nodes is None else digest(calib_nodes.tolist()),
            },
        }
        if scan is not None:
            ctx.selection = selection_split(data, scan.validation_fraction, spec.seed, EVAL_CHUNK)
            meta["selection"] = _selection_meta(model, ctx)
        if params.compose is not None:
            prepared = compose.prepare_faults(spec, params)
            ctx.faults = prepared.context
            meta["faults"] = prepared.meta
        return Prepared(ctx, meta)

    def to_device(self, context: Any, device: torch.device) -> Any:
        """The context on ``device`` once per worker (:func:`.device.context_on`)."""
        from faultlab.workers.sparsity.device import context_on

        return context_on(context, device)

    # -- plan -----------------------------------------------------------------------------
    def plan(self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
             previous: list[TrialRecord]) -> list[dict[str, Any]]:
        params = self.params(spec)
        trials: list[dict[str, Any]] = []
        if round_index == 0:
            trials += sweep_cells(params, spec.seed)
            trials += sensitivity_trials(params, spec.seed, _targets(params, meta))
        elif round_index == 1:
            scans = [(r.trial, r.result) for r in previous if r.trial.get("type") == "sensitivity"]
            trials += allocation_cells(params, spec.seed, meta, scans)
        if params.compose is not None:
            from faultlab.workers import get_engine

            derived = compose.fault_spec(spec, params)
            dense_meta = compose.dense_meta(meta["faults"])
            planned = get_engine("faults").plan(
                derived, dense_meta, round_index, compose.dense_records(previous)
            )
            trials += compose.replicate(planned, meta["faults"], params)
        if len(trials) > spec.execution.max_trials:
            raise SpecError(
                "execution.max_trials",
                f"round {round_index} plans {len(trials)} trials, above the limit "
                f"{spec.execution.max_trials}",
            )
        return trials

    # -- run ------------------------------------------------------------------------------
    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ctx: SparsityContext = context
        previous = torch.get_num_threads()
        torch.set_num_threads(ctx.threads)
        try:
            return self._run_trials(ctx, trials)
        finally:
            torch.set_num_threads(previous)

    def _run_trials(
        self, ctx: SparsityContext, trials: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        results = []
        for trial in trials:
            start = time.perf_counter()
            kind = trial["type"]
            if kind == "fault":
                from faultlab.workers import get_engine

                result = get_engine("faults").run_shard(ctx.faults, [trial["fault"]])[0]
            elif kind == "sensitivity":
                result = self._run_sensitivity(ctx, trial)
            else:
                result = self._run_cell(ctx, trial)
            result["compute_seconds"] = time.perf_counter() - start
            results.append(result)
        return results

    def _latencies(self, ctx: SparsityContext, models: list[nn.Module]) -> list[float]:
        """Interleaved latencies (fastest of the repeats) of ``models``, the dense model first."""
        lat = ctx.params.latency
        forwards = [lambda m=m: m(*ctx.latency_inputs) for m in models]
        return measure_latencies(forwards, repeats=lat.repeats, warmup=lat.warmup,
                                 threads=lat.threads)

    def _apply(self, ctx: SparsityContext, model: nn.Module, step: list[dict[str, Any]], seed: int,
               **override: Any) -> nn.Module:
        for transform in step:
            params = {**transform["params"], **override}
            model = run_transform(transform["name"], model, ctx.data, params, seed=seed)
            if ctx.device != "cpu":
                model = model.to(ctx.device)  # layers a transform built (low rank) follow
        return model.eval()

    def _run_cell(self, ctx: SparsityContext, trial: dict[str, Any]) -> dict[str, Any]:
        seed = int(trial["seed"])
        tune = trial["finetune"]
        try:
            model = copy.deepcopy(ctx.model)
            for step in trial["steps"]:
                model = self._apply(ctx, model, step, seed)
                if tune["epochs_per_step"] > 0:
                    model = finetune(
                        model, ctx.data, epochs=tune["epochs_per_step"], lr=tune["lr"],
                        batch_size=tune["batch_size"], seed=seed,
                    )
            model.eval()
            mask = _correct_mask(model, ctx)
            correct = int(mask.sum())
        except Exception as exc:  # noqa: BLE001 - a cell whose transforms fail is an outcome
            # (deterministic: retrying the shard would fail again), recorded and reported.
            return {"error": f"{type(exc).__name__}: {exc}"}
        stats = model_stats(model, weight_bits=trial.get("weight_bits"), nm_m=trial.get("nm_m"))
        macs = count_macs(model, ctx.latency_inputs, ctx.latency_per)
        total = int(ctx.labels.numel())
        result: dict[str, Any] = {
            "correct": correct, "total": total, "accuracy": correct / max(total, 1),
            "correct_mask": pack_mask(mask.tolist()),
            **stats.to_dict(),
            "macs": macs.dense, "macs_effective": macs.effective,
            "aggregation_macs": macs.aggregation,
        }
        timed = [ctx.model, model]
        if trial.get("structured"):
            # The masked twin: the same channels zeroed instead of removed (latency only).
            twin = copy.deepcopy(ctx.model)
            for step in trial["steps"]:
                twin = self._apply(ctx, twin, step, seed, masked=True)
            timed.append(twin)
        latencies = self._latencies(ctx, timed)
        result["dense_latency_seconds"], result["latency_seconds"] = latencies[0], latencies[1]
        result.update(latency_setting(model, ctx.latency_inputs, ctx.latency_per))
        if trial.get("structured"):
            result["masked_latency_seconds"] = latencies[2]
        if trial["family"] == "allocation":
            result["layer_sparsity"] = {
                layer.name: round(
                    1.0 - float(torch.count_nonzero(layer.weight)) / layer.weight.numel(), 6
                )
                for layer in weight_layers(model)
            } if not trial.get("structured") else None
        return result

    def _run_sensitivity(self, ctx: SparsityContext, trial: dict[str, Any]) -> dict[str, Any]:
        transform = trial["transform"]
        target = trial["target"]
        structured = trial["method"] in STRUCTURED
        if structured:
            model = copy.deepcopy(ctx.model)
            model = self._apply(ctx, model, [transform], int(trial["seed"]))
            correct, total = _selected(model, ctx)
            stats = model_stats(model)
            return {"correct": correct, "total": total, "accuracy": correct / max(total, 1),
                    "weights": stats.weights, "weights_nonzero": stats.weights_nonzero}
        # Unstructured: prune the one layer of the shared dense model in place and restore it
        # (no copy of the model per trial).
        layer = weight_layers(ctx.model, [target])[0]
        backup = layer.weight.detach().clone()
        try:
            self._apply(ctx, ctx.model, [transform], int(trial["seed"]))
            correct, total = _selected(ctx.model, ctx)
            nonzero = int(torch.count_nonzero(layer.weight))
        finally:
            with torch.no_grad():
                layer.weight.copy_(backup)
        return {"correct": correct, "total": total, "accuracy": correct / max(total, 1),
                "target_size": backup.numel(), "target_nonzero": nonzero}

    # -- aggregate ------------------------------------------------------------------------
    def aggregate(
        self, spec: CampaignSpec, meta: dict[str, Any], records: list[TrialRecord]
    ) -> Report:
        params = self.params(spec)
        provenance = self.provenance(spec, meta, calibration=meta["calibration"],
                                     selection=meta.get("selection"))
        tables: dict[str, pd.DataFrame] = {}
        cells = [(r.trial, r.result) for r in records if r.trial.get("type") == "cell"]
        runs = reporting.cell_runs(cells, meta)
        tables["cells"] = reporting.cell_table(runs, meta, params)
        tables["runs"] = runs
        curves = reporting.curve_table(tables["cells"], meta)
        if not curves.empty:
            tables["curves"] = curves
        scans = [(r.trial, r.result) for r in records if r.trial.get("type") == "sensitivity"]
        if scans:
            tables["sensitivity"] = reporting.sensitivity_table(scans, meta)
        cell_table = tables["cells"]
        allocation = cell_table[cell_table["family"] == "allocation"] if len(cell_table) else None
        if allocation is not None and not allocation.empty:
            tables["allocation"] = reporting.allocation_table(allocation, runs)
        summary = reporting.summary(tables, meta, params)
        if params.compose is not None:
            from faultlab.workers import get_engine

            fault_recs = compose.fault_records(records)
            if fault_recs:
                derived = compose.fault_spec(spec, params)
                fault_report = get_engine("faults").aggregate(derived, meta["faults"], fault_recs)
                comp = reporting.composition_table(fault_report, records, meta["faults"], params)
                tables["composition"] = comp
                summary["composition"] = reporting.composition_summary(comp)
        errors = [r.result["error"] for r in records if "error" in r.result]
        summary["errors"] = len(errors)
        if errors:
            summary["first_error"] = errors[0]
        summary["trials"] = len(records)
        return Report(kind=self.kind, summary=summary, tables=tables, primary="cells",
                      provenance=provenance)


__all__ = ["SparsityEngine"]
