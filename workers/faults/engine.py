"""The fault-injection engine (campaign kind ``faults``).

``validate`` checks layer names, targets and number formats against the real model structure;
``prepare`` loads every (model, dataset) workload, converts it to each number format once,
profiles mitigation bounds and runs the golden pass; ``plan`` sizes strata (Leveugle et al.) or
adapts them round by round (Wilson half-width ≤ margin); ``run_shard`` injects each trial's
faults in place / by hooks, classifies the output and restores the model bit for bit;
``aggregate`` builds the per-layer, per-bit, layer × bit, per-model, mitigation and
node-degree tables. See docs/faults.md.
"""

from __future__ import annotations

import difflib
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.report import Report
from faultlab.spec import CampaignSpec, DatasetSpec, ModelSpec
from faultlab.version import code_version
from faultlab.workers.engine import Engine, Prepared, TrialRecord
from faultlab.workers.faults import aggregate as agg
from faultlab.workers.faults.mitigations import get_mitigation
from faultlab.workers.faults.models import get_fault_model
from faultlab.workers.faults.params import FaultParams
from faultlab.workers.faults.planning import plan_round, strata
from faultlab.workers.faults.sites import (
    SiteInfo,
    dynamic_sites,
    edge_index_site,
    eligible_by_default,
    is_message_passing,
    parameter_names,
    parameter_sites,
)
from faultlab.workers.faults.workload import CHUNK, Workload, cast_inputs, convert
from faultlab.workers.zoo import (
    GraphData,
    ImageData,
    build_model,
    load_dataset,
    trained_model,
)
from faultlab.workers.zoo.training import forward_batches

GRAPH_TARGETS = frozenset({"embedding", "message", "aggregation", "edge_index", "edge_weight"})


@dataclass
class FaultContext:
    """What every shard needs (travels once per campaign through Ray's object store)."""

    params: FaultParams
    workloads: dict[str, Workload]


def _pairs(spec: CampaignSpec) -> list[tuple[str, ModelSpec, DatasetSpec, str, str]]:
    """``(workload name, model, dataset, model field, dataset field)`` of the cross product."""
    params: FaultParams = spec.params  # type: ignore[assignment]
    models = [(spec.model, "model")] + [
        (m, f"faults.compare_models[{i}]") for i, m in enumerate(params.compare_models)
    ]
    datasets = [(spec.dataset, "dataset")] + [
        (d, f"faults.compare_datasets[{i}]") for i, d in enumerate(params.compare_datasets)
    ]
    out = []
    seen: dict[str, int] = {}
    for m, mfield in models:
        for d, dfield in datasets:
            label = m.name
            arch = {k: v for k, v in sorted(m.options.items()) if k not in ("epochs", "lr")}
            if arch:
                label += "(" + ",".join(f"{k}={v}" for k, v in arch.items()) + ")"
            if m.transforms:
                label += "+" + "+".join(t.name for t in m.transforms)
            name = f"{label}@{d.name}"
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}#{seen[name]}"
            out.append((name, m, d, mfield, dfield))
    return out


def _reraise(exc: SpecError, field: str, default: str) -> SpecError:
    if field == default or not exc.field.startswith(default):
        return exc
    return SpecError(field + exc.field[len(default):], exc.problem, exc.allowed)


def _load(m: ModelSpec, d: DatasetSpec, mfield: str, dfield: str, trained: bool
          ) -> tuple[nn.Module, ImageData | GraphData, str]:
    try:
        data = load_dataset(d)
    except SpecError as exc:
        raise _reraise(exc, dfield, "dataset") from None
    try:
        if trained or m.transforms:
            model, model_digest = trained_model(m, data)
        else:
            model, model_digest = build_model(m, data).eval(), ""
    except SpecError as exc:
        raise _reraise(exc, mfield, "model") from None
    return model, data, model_digest


def discover_sites(
    model: nn.Module, params: FaultParams, dtype: str, args: list[tuple[Any, ...]], kind: str
) -> list[SiteInfo]:
    """Every site of the campaign's target in ``model`` (running one forward if needed)."""
    target = params.target
    if target in ("weight", "bias"):
        return parameter_sites(model, target, int8=dtype == "int8")
    if target == "edge_index":
        return [edge_index_site(args[0][1])] if kind == "graph" else []

    def run() -> None:
        for a in args:
            model(*a)

    return dynamic_sites(model, target, run, per_sample=kind == "image")


def select_sites(
    sites: list[SiteInfo], params: FaultParams, model: nn.Module, workload: str
) -> list[SiteInfo]:
    """The sites named by ``faults.layers`` (default: every eligible one)."""
    if not params.layers:
        chosen = [s for s in sites if eligible_by_default(s)]
    else:
        chosen = []
        for name in params.layers:
            hits = [s for s in sites if name in (s.module, s.name, s.name.split("#")[0])]
            if not hits:
                valid = sorted({s.module for s in sites if s.module} | {s.name for s in sites})
                if params.target in ("weight", "bias"):
                    valid = sorted(set(valid) | set(parameter_names(model, params.target)))
                close = difflib.get_close_matches(name, valid, n=6, cutoff=0.4) or valid[:12]
                raise SpecError(
                    "faults.layers",
                    f"unknown layer {name!r} for target {params.target!r} in {workload}"
                    f" ({len(valid)} valid names)",
                    close,
                )
            chosen += [h for h in hits if h not in chosen]
    return chosen


def _check_target(params: FaultParams, model: nn.Module, kind: str, workload: str) -> None:
    if params.target in GRAPH_TARGETS:
        if kind != "graph":
            raise SpecError("faults.target", f"{params.target!r} needs a graph model; "
                            f"{workload} is an image workload", ["weight", "bias", "activation"])
        if params.target != "edge_index" and not any(
            is_message_passing(m) for m in model.modules()
        ):
            raise SpecError("faults.target", f"{workload} has no MessagePassing layer",
                            ["weight", "bias", "activation", "edge_index"])


class FaultEngine(Engine):
    kind = "faults"
    version = "faults-1"

    # -- validate -------------------------------------------------------------------------
    def validate(self, spec: CampaignSpec) -> None:
        params: FaultParams = spec.params  # type: ignore[assignment]
        for name, m, d, mfield, dfield in _pairs(spec):
            model, data, _ = _load(m, d, mfield, dfield, trained=False)
            _check_target(params, model, data.kind, name)
            args, _, _ = forward_batches(data, "test", 2, CHUNK)
            for dtype in params.dtypes:
                if dtype in ("fp16", "bf16"):
                    continue  # same structure and names as fp32
                sites = discover_sites(model, params, dtype, args, data.kind)
                if dtype == "int8" and not sites:
                    raise SpecError(
                        "faults.dtypes",
                        f"int8 faults need a model quantized with scale/zero point "
                        f"(e.g. through model.transforms); {name} stores no int8 "
                        f"{params.target} tensors",
                        ["fp32", "fp16", "bf16"],
                    )
                chosen = select_sites(sites, params, model, name)
                if not chosen:
                    raise SpecError("faults.layers", f"no {params.target} sites in {name}")
            for i, mit in enumerate(params.mitigations):
                m_obj = get_mitigation(mit.name, f"faults.mitigations[{i}]")
                names = dict(model.named_modules())
                for layer in mit.layers:
                    if layer not in names:
                        close = difflib.get_close_matches(layer, list(names), n=6, cutoff=0.4)
                        raise SpecError(f"faults.mitigations[{i}].layers",
                                        f"unknown module {layer!r} in {name}", close)
                layers = list(mit.layers) or m_obj.default_layers(model)
                if mit.name == "gnn_bound" and not any(
                    is_message_passing(names[n]) for n in layers
                ):
                    raise SpecError(f"faults.mitigations[{i}].name",
                                    f"gnn_bound needs MessagePassing layers; {name} has none",
                                    ["ranger", "clipping"])

    # -- prepare --------------------------------------------------------------------------
    def prepare(self, spec: CampaignSpec) -> Prepared:
        self.validate(spec)
        params: FaultParams = spec.params  # type: ignore[assignment]
        workloads: dict[str, Workload] = {}
        wl_meta: list[dict[str, Any]] = []
        overhead: dict[str, Any] = {}
        for name, m, d, mfield, dfield in _pairs(spec):
            model, data, model_digest = _load(m, d, mfield, dfield, trained=True)
            args, eval_ids, labels = forward_batches(data, d.split, d.size, CHUNK)
            wl = Workload(name, data.kind, {}, {}, eval_ids, labels)
            for dtype in params.dtypes:
                wl.models[dtype] = convert(model, dtype)
                wl.inputs[dtype] = [cast_inputs(a, dtype) for a in args]
                sites = discover_sites(wl.models[dtype], params, dtype, wl.inputs[dtype], data.kind)
                wl.sites[dtype] = {s.name: s for s in select_sites(sites, params, model, name)}
            degree_counts: list[int] = []
            if isinstance(data, GraphData) and eval_ids is not None:
                from torch_geometric.utils import degree

                deg = degree(data.data.edge_index[1], data.data.num_nodes)[eval_ids]
                edges = torch.tensor(params.degree_bins, dtype=deg.dtype)
                wl.degree_bucket = torch.bucketize(deg, edges)
                wl.num_buckets = len(params.degree_bins) + 1
                degree_counts = torch.bincount(wl.degree_bucket, minlength=wl.num_buckets).tolist()
            overhead[name] = self._mitigate(wl, params, data, d.split)
            workloads[name] = wl
            wl_meta.append({
                "name": name, "model": m.name, "dataset": d.name, "kind": data.kind,
                "model_digest": model_digest, "dataset_digest": data.digest,
                "inputs": int(labels.numel()),
                "golden_accuracy": {dt: wl.golden[(dt, "none")].accuracy for dt in params.dtypes},
                "sites": {dt: [s.to_dict() for s in wl.sites[dt].values()] for dt in params.dtypes},
                "degree_counts": degree_counts,
            })
        meta = {
            "model_digest": digest([w["model_digest"] for w in wl_meta]) if len(wl_meta) > 1
            else wl_meta[0]["model_digest"],
            "dataset_digest": digest([w["dataset_digest"] for w in wl_meta]) if len(wl_meta) > 1
            else wl_meta[0]["dataset_digest"],
            "workloads": wl_meta,
            "mitigation_overhead": overhead,
        }
        return Prepared(FaultContext(params, workloads), meta)

    def _mitigate(self, wl: Workload, params: FaultParams, data: ImageData | GraphData,
                  split: str) -> dict[str, Any]:
        """Profiles each mitigation's bounds on fault-free data, runs the golden passes and
        measures the fault-free latency of every arm (the mitigation's overhead)."""
        if isinstance(data, GraphData):
            profile_args = {dt: wl.inputs[dt] for dt in params.dtypes}
        else:
            x_train, _ = data.split("train")
            profile_args = {dt: [cast_inputs((x_train[:1024],), dt)] for dt in params.dtypes}
        out: dict[str, Any] = {}
        for dtype in params.dtypes:
            model = wl.models[dtype]
            for mit in params.mitigations:
                m_obj = get_mitigation(mit.name)
                layers = list(mit.layers) or m_obj.default_layers(model)

                def forward(model: nn.Module = model, dtype: str = dtype) -> None:
                    for a in profile_args[dtype]:
                        model(*a)

                bounds = m_obj.profile(model, layers, forward)
                entry = wl.mitigations.setdefault(mit.name, (m_obj, {}, mit.slack))
                entry[1][dtype] = bounds
            variants = ["none", *[m.name for m in params.mitigations]]
            for variant in variants:
                wl.run_golden(dtype, variant)
            seconds = _latency(wl, dtype, variants) if params.mitigations else {"none": 0.0}
            out[dtype] = {
                v: {"seconds": seconds[v], "accuracy": wl.golden[(dtype, v)].accuracy,
                    "overhead": seconds[v] / seconds["none"] - 1.0 if seconds["none"] else 0.0}
                for v in variants
            }
        return out

    # -- plan -----------------------------------------------------------------------------
    def max_rounds(self, spec: CampaignSpec) -> int | None:
        params: FaultParams = spec.params  # type: ignore[assignment]
        return None if params.sampling == "adaptive" else 1

    def plan(self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
             previous: list[TrialRecord]) -> list[dict[str, Any]]:
        params: FaultParams = spec.params  # type: ignore[assignment]
        return plan_round(params, spec.seed, meta, round_index,
                          [(r.trial, r.result) for r in previous], spec.execution.max_trials)

    # -- run ------------------------------------------------------------------------------
    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ctx: FaultContext = context
        results = []
        for trial in trials:
            start = time.perf_counter()
            result = self._arm(ctx, trial, "none")
            if ctx.params.mitigations:
                result["mitigated"] = {m.name: self._arm(ctx, trial, m.name)
                                       for m in ctx.params.mitigations}
            result["compute_seconds"] = time.perf_counter() - start
            results.append(result)
        return results

    @staticmethod
    def _arm(ctx: FaultContext, trial: dict[str, Any], variant: str) -> dict[str, Any]:
        """One arm (no mitigation, or one mitigation) of a trial: inject, run, classify."""
        wl = ctx.workloads[trial["workload"]]
        fm = get_fault_model(trial["fault_model"])
        dtype = trial["dtype"]
        return wl.classify(
            dtype, variant, lambda: wl.faulty_output(dtype, variant, trial["faults"], fm),
            ctx.params.sdc_tolerance,
        )

    def outcomes_equal(self, stored: dict[str, Any], replayed: dict[str, Any]) -> bool:
        return _strip(stored) == _strip(replayed)

    # -- aggregate ------------------------------------------------------------------------
    def aggregate(self, spec: CampaignSpec, meta: dict[str, Any],
                  records: list[TrialRecord]) -> Report:
        params: FaultParams = spec.params  # type: ignore[assignment]
        weighted = params.sampling != "uniform"
        pops = agg.populations_of(strata(params, meta))
        df = agg.trial_frame([(r.trial, r.result) for r in records])
        provenance = {
            "spec_hash": spec.spec_hash, "code_version": code_version(), "seed": spec.seed,
            "engine_version": self.version, "model_digest": meta["model_digest"],
            "dataset_digest": meta["dataset_digest"],
            "workloads": {w["name"]: {"model_digest": w["model_digest"],
                                      "dataset_digest": w["dataset_digest"]}
                          for w in meta["workloads"]},
        }
        if df.empty:
            return Report(kind=self.kind, summary={"trials": 0}, primary="per_layer",
                          provenance=provenance)
        golden = {w["name"]: w["golden_accuracy"] for w in meta["workloads"]}
        conf = params.confidence

        def gold(row: Any) -> float:
            return float(golden[row["workload"]][row["dtype"]])

        base = df[df["mitigation"] == "none"]
        tables = {
            "per_layer": agg.grouped(df, ["workload", "dtype", "layer", "mitigation"], pops,
                                     weighted, conf),
            "per_bit": agg.grouped(df, ["workload", "dtype", "bit", "mitigation"], pops,
                                   weighted, conf),
            "layer_bit": agg.grouped(base, ["workload", "dtype", "layer", "bit"], pops, weighted,
                                     conf),
            "per_model": agg.grouped(df, ["workload", "dtype", "mitigation"], pops, weighted,
                                     conf, extra={"golden_accuracy": gold}),
        }
        mit = agg.mitigation_table(df, meta, params, pops, weighted)
        if not mit.empty:
            tables["mitigation"] = mit
        deg = agg.degree_table(df, meta, params)
        if not deg.empty:
            tables["by_degree"] = deg
        if "nodes_affected" in base and base["nodes_affected"].notna().any():
            tables["nodes_affected"] = (
                base.groupby(["workload", "dtype"])["nodes_affected"]
                .agg(["mean", "median", "max"]).reset_index()
                .rename(columns={"mean": "nodes_affected_mean", "median": "nodes_affected_median",
                                 "max": "nodes_affected_max"})
            )
        overall = agg.rate_columns(base, pops, weighted, conf)
        summary: dict[str, Any] = {
            "trials": int(len(base)),
            "rounds": int(max(r.trial.get("round", 0) for r in records)) + 1,
            **{k: v for k, v in overall.items() if k not in ("trials",)},
            "golden_accuracy": golden,
            "workloads": [w["name"] for w in meta["workloads"]],
            "strata": int(base["stratum"].nunique()),
            "compute_seconds": float(sum(r.result.get("compute_seconds", 0.0) for r in records)),
            "mean_accuracy_under_fault": float(base["accuracy"].mean()),
            "confidence": conf,
            **params.summary(),
        }
        if math.isinf(summary.get("population", 0.0)):
            summary["population"] = None
        return Report(kind=self.kind, summary=summary, tables=tables, primary="per_layer",
                      provenance=provenance)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not str(k).endswith("_seconds")}
    return value


def _latency(wl: Workload, dtype: str, variants: list[str], repeats: int = 7) -> dict[str, float]:
    """Median fault-free forward time of each arm (after a warm-up; arms interleaved so load
    changes on a shared machine hit every arm alike)."""
    times: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(repeats + 1):
        for v in variants:
            with wl.mitigation_stack(dtype, v):
                start = time.perf_counter()
                wl.forward(dtype, None)
                elapsed = time.perf_counter() - start
            if rep:
                times[v].append(elapsed)
    return {v: statistics.median(t) for v, t in times.items()}


__all__ = ["FaultEngine"]
