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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.report import Report
from faultlab.spec import CampaignSpec
from faultlab.workers.engine import Engine, Prepared, TrialRecord, move_to
from faultlab.workers.faults import aggregate as agg
from faultlab.workers.faults import warm
from faultlab.workers.faults.batched import run_batched
from faultlab.workers.faults.loading import load_workload, workload_pairs
from faultlab.workers.faults.mitigations import MITIGATIONS
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.faults.params import DtypeName, FaultParams
from faultlab.workers.faults.planning import iter_round, plan_round, round_allocation, strata
from faultlab.workers.faults.sites import is_message_passing
from faultlab.workers.faults.targets import campaign_sites, check_targets
from faultlab.workers.faults.workload import CHUNK, Workload, cast_inputs, convert
from faultlab.workers.zoo import GraphData, ImageData
from faultlab.workers.zoo.training import forward_batches


@dataclass
class FaultContext:
    """What every shard needs (travels once per campaign through Ray's object store)."""

    params: FaultParams
    workloads: dict[str, Workload]
    batch_faults: int | str = "auto"
    """``execution.batch_faults``: trials per batched forward (``auto``, ``off`` or a cap)."""


class FaultEngine(Engine[FaultParams]):
    """Fault-injection campaigns (see the module docstring)."""

    kind = "faults"
    version = "3"
    params_type = FaultParams
    #: How many trials shared a batched forward: execution, never an outcome (bit-exact).
    provenance_fields = frozenset({"batch_faults"})

    # -- validate -------------------------------------------------------------------------
    def validate(self, spec: CampaignSpec) -> None:
        params = self.params(spec)
        for name, m, d, mfield, dfield in workload_pairs(spec, params):
            model, data, _ = load_workload(m, d, mfield, dfield, trained=False)
            check_targets(params, model, data.kind, name)
            args, _, _ = forward_batches(data, "test", 2, CHUNK)
            for dtype in params.dtypes:
                if dtype in ("fp16", "bf16"):
                    continue  # same structure and names as fp32
                chosen = campaign_sites(model, params, dtype, args, data.kind, name)
                if dtype == "int8" and not chosen:
                    raise SpecError(
                        "faults.dtypes",
                        f"int8 faults need a model quantized with scale/zero point "
                        f"(e.g. through model.transforms); {name} stores no int8 "
                        f"{params.target} tensors",
                        ["fp32", "fp16", "bf16"],
                    )
                if not chosen:
                    raise SpecError("faults.layers", f"no {params.target} sites in {name}")
            for i, mit in enumerate(params.mitigations):
                m_obj = MITIGATIONS.get(mit.name, f"faults.mitigations[{i}].name").impl()
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
        params = self.params(spec)
        workloads: dict[str, Workload] = {}
        wl_meta: list[dict[str, Any]] = []
        overhead: dict[str, Any] = {}
        for name, m, d, mfield, dfield in workload_pairs(spec, params):
            model, data, model_digest = load_workload(m, d, mfield, dfield, trained=True)
            args, eval_ids, labels = forward_batches(data, d.split, d.size, CHUNK)
            wl = Workload(name, data.kind, {}, {}, eval_ids, labels)
            for dtype in params.dtypes:
                wl.models[dtype] = convert(model, dtype)
                wl.inputs[dtype] = [cast_inputs(a, dtype) for a in args]
                sites = campaign_sites(wl.models[dtype], params, dtype, wl.inputs[dtype],
                                       data.kind, name)
                wl.sites[dtype] = {s.name: s for s in sites}
            degree_counts: list[int] = []
            if isinstance(data, GraphData) and eval_ids is not None:
                from torch_geometric.utils import degree

                deg = degree(data.data.edge_index[1], data.data.num_nodes)[eval_ids]
                edges = torch.tensor(params.degree_bins, dtype=deg.dtype)
                wl.degree_bucket = torch.bucketize(deg, edges)
                wl.num_buckets = len(params.degree_bins) + 1
                degree_counts = torch.bincount(wl.degree_bucket, minlength=wl.num_buckets).tolist()
            overhead[name] = self._mitigate(wl, params, data, d.split)
            wl.fingerprint = warm.fingerprint(wl)
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
        return Prepared(FaultContext(params, workloads, spec.execution.batch_faults), meta)

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
                m_obj = MITIGATIONS.get(mit.name).impl()
                layers = list(mit.layers) or m_obj.default_layers(model)

                def forward(model: nn.Module = model, dtype: DtypeName = dtype) -> None:
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

    def to_device(self, context: Any, device: torch.device) -> Any:
        """The workloads on ``device`` (int8 campaigns stay on the CPU: quantized kernels
        are CPU-only); fp16/bf16 models then run natively in their format on a GPU. A
        workload this process already holds warm (the same content, from an earlier
        campaign: :mod:`~faultlab.workers.faults.warm`) is used instead, derived state and
        all."""
        ctx: FaultContext = context
        if device.type == "cpu" or "int8" in ctx.params.dtypes:
            device = torch.device("cpu")
        workloads = {}
        for name, wl in ctx.workloads.items():
            found = warm.held(wl, device)  # this process's warm copy of the same content
            if found is None:
                found = wl
                if device.type != "cpu":
                    found = move_to(wl, device).without_derived()  # rebuilt on the device
                warm.keep(found, device)
            workloads[name] = found
        return FaultContext(ctx.params, workloads, ctx.batch_faults)

    # -- plan -----------------------------------------------------------------------------
    def max_rounds(self, spec: CampaignSpec) -> int | None:
        params = self.params(spec)
        return None if params.sampling == "adaptive" else 1

    def plan(self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
             previous: list[TrialRecord]) -> list[dict[str, Any]]:
        params = self.params(spec)
        return plan_round(params, spec.seed, meta, round_index,
                          [(r.trial, r.result) for r in previous], spec.execution.max_trials)

    def round_size(self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
                   previous: list[TrialRecord]) -> int:
        params = self.params(spec)
        allocation = round_allocation(params, spec.seed, meta, round_index,
                                      [(r.trial, r.result) for r in previous],
                                      spec.execution.max_trials)
        return sum(count for _, _, count in allocation)

    def iter_plan(self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
                  previous: list[TrialRecord]) -> Iterator[dict[str, Any]]:
        params = self.params(spec)
        return iter_round(params, spec.seed, meta, round_index,
                          [(r.trial, r.result) for r in previous], spec.execution.max_trials)

    # -- run ------------------------------------------------------------------------------
    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ctx: FaultContext = context
        shard_start = time.perf_counter()
        batched = run_batched(ctx.workloads, trials, ctx.batch_faults, ctx.params.sdc_tolerance,
                              lambda trial: self._arm(ctx, trial, "none"))
        batched_share = (time.perf_counter() - shard_start) / max(1, len(batched))
        results = []
        for i, trial in enumerate(trials):
            start = time.perf_counter()
            result = batched[i] if i in batched else self._arm(ctx, trial, "none")
            if ctx.params.mitigations:
                result["mitigated"] = {m.name: self._arm(ctx, trial, m.name)
                                       for m in ctx.params.mitigations}
            result["compute_seconds"] = time.perf_counter() - start + (
                batched_share if i in batched else 0.0)
            results.append(result)
        return results

    @staticmethod
    def _arm(ctx: FaultContext, trial: dict[str, Any], variant: str) -> dict[str, Any]:
        """One arm (no mitigation, or one mitigation) of a trial: inject, run, classify."""
        wl = ctx.workloads[trial["workload"]]
        fm = FAULT_MODELS.get(trial["fault_model"]).impl()
        dtype = trial["dtype"]
        return wl.classify(
            dtype, variant, lambda: wl.faulty_output(dtype, variant, trial["faults"], fm),
            ctx.params.sdc_tolerance,
        )

    # -- aggregate ------------------------------------------------------------------------
    def aggregate(self, spec: CampaignSpec, meta: dict[str, Any],
                  records: list[TrialRecord]) -> Report:
        return self.aggregate_pages(spec, meta, [records])

    def aggregate_pages(self, spec: CampaignSpec, meta: dict[str, Any],
                        pages: Iterable[list[TrialRecord]]) -> Report:
        """The report from one trial-frame block per page: what a page's records hold
        beyond the frame's columns (the rounds, the compute time) is reduced as it goes, so a
        2×10⁵-trial report holds the frame, not 2×10⁵ result dicts."""
        frames, rounds, compute = [], 0, 0.0
        for page in pages:
            frames.append(agg.trial_frame([(r.trial, r.result) for r in page]))
            rounds = max([rounds, *(int(r.trial.get("round", 0)) + 1 for r in page)])
            compute += sum(float(r.result.get("compute_seconds", 0.0)) for r in page)
        df = agg.concat_frames(frames)
        return self._report(spec, meta, df, rounds, compute)

    def _report(self, spec: CampaignSpec, meta: dict[str, Any], df: Any, rounds: int,
                compute_seconds: float) -> Report:
        params = self.params(spec)
        weighted = params.sampling != "uniform"
        pops = agg.populations_of(strata(params, meta))
        provenance = self.provenance(spec, meta, workloads={
            w["name"]: {"model_digest": w["model_digest"], "dataset_digest": w["dataset_digest"]}
            for w in meta["workloads"]
        })
        if df.empty:
            return Report(kind=self.kind, summary={"trials": 0}, primary="per_layer",
                          provenance=provenance)
        golden = {w["name"]: w["golden_accuracy"] for w in meta["workloads"]}
        conf = params.confidence

        def gold(row: Any) -> float:
            return float(golden[row["workload"]][row["dtype"]])

        base = df[df["mitigation"] == "none"]
        tables = agg.rate_tables(df, pops, weighted, conf, params.multi_target,
                                 per_model_extra={"golden_accuracy": gold})
        tables["strata"] = agg.strata_table(pops, base)
        mit = agg.mitigation_table(df, meta, params, pops, weighted)
        if not mit.empty:
            tables["mitigation"] = mit
        deg = agg.degree_table(df, meta, params, pops, weighted)
        if not deg.empty:
            tables["by_degree"] = deg
        if "nodes_affected" in base and base["nodes_affected"].notna().any():
            tables["nodes_affected"] = agg.nodes_affected_table(base)
        overall = agg.rate_columns(base, pops, weighted, conf)
        summary: dict[str, Any] = {
            "trials": int(len(base)),
            "rounds": rounds,
            **{k: v for k, v in overall.items() if k not in ("trials",)},
            "golden_accuracy": golden,
            "workloads": [w["name"] for w in meta["workloads"]],
            "layer_order": [s["name"] for w in meta["workloads"]
                            for s in next(iter(w["sites"].values()), [])],
            "strata": int(base["stratum"].nunique()),
            "compute_seconds": compute_seconds,
            "mean_accuracy_under_fault": overall["mean_accuracy"],
            "confidence": conf,
            "sdc_tolerance": params.sdc_tolerance,
            **params.summary(),
        }
        if not math.isfinite(summary.get("population", 0.0)):
            summary["population"] = None
        return Report(kind=self.kind, summary=summary, tables=tables, primary="per_layer",
                      provenance=provenance)


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
