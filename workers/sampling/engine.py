"""The sampling engine: operational-accuracy assessment and the DAIC improvement cycle.

``prepare`` (once per campaign, in a Ray task) trains or loads the model on the training split
minus the held-out slice, builds the operational pool (``operational.py``), scores every
pseudo-oracle once over the whole pool (cached on disk by content digest) and keeps the
pool's true labels behind a counting :class:`~.samplers.LabelOracle`. ``plan`` expands the
mode into trials — replay: one (sampler, budget, repetition) cell each; assess: one per
sampler; improve: one (arm, repetition) DAIC cycle each — every trial carrying its own seed.
``run_shard`` runs them; ``aggregate`` turns the records into the report.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.report import Report
from faultlab.spec import CampaignSpec, ModelSpec
from faultlab.stats import rate_with_ci
from faultlab.workers.engine import Engine, Prepared, TrialRecord, device_boundary
from faultlab.workers.sampling import evaluation
from faultlab.workers.sampling.improve import batched_logits, run_cycle
from faultlab.workers.sampling.operational import (
    build_pool,
    improvement_split,
    plan_pool,
    training_data,
)
from faultlab.workers.sampling.oracles import ScoringContext
from faultlab.workers.sampling.params import OracleSettings, SamplerSpec, SamplingParams
from faultlab.workers.sampling.samplers import (
    SAMPLERS,
    LabelOracle,
    OperationalPool,
)
from faultlab.workers.sampling.samplers.base import summary
from faultlab.workers.sampling.scoring import cached_scores, oracle_quality, pool_composition
from faultlab.workers.zoo import ImageData, build_model, load_dataset, trained_model
from faultlab.workers.zoo.registry import tensors_digest

#: The control arm of improve campaigns: the same labels spent on random inputs.
CONTROL = SamplerSpec(name="srs", label="control(srs)")

@dataclass
class SamplingContext:
    """What every shard needs (travels once per campaign through Ray's object store)."""

    pool: OperationalPool
    labels: np.ndarray
    """True labels of the pool — reached only through a counting LabelOracle."""
    truth: float
    """The model's operational accuracy over the whole pool (replay's target)."""
    component: np.ndarray
    origin_split: np.ndarray
    origin_row: np.ndarray
    shift_names: list[str]
    model: nn.Module
    model_spec: ModelSpec
    x_pool: torch.Tensor
    train: ImageData
    oracle_settings: OracleSettings
    improve_ids: np.ndarray
    eval_ids: np.ndarray


def _seed(*parts: Any) -> int:
    return int(digest(list(parts))[:15], 16)


def _image_data(spec: CampaignSpec) -> ImageData:
    data = load_dataset(spec.dataset)
    if not isinstance(data, ImageData):
        raise SpecError("dataset.name", "sampling campaigns need an image dataset (a graph's "
                        "nodes are not supported yet)")
    return data


class SamplingEngine(Engine[SamplingParams]):
    """Operational-accuracy sampling (DAIC): assess, replay and improve."""

    kind = "sampling"
    version = "3"
    params_type = SamplingParams

    def validate(self, spec: CampaignSpec) -> None:
        params = self.params(spec)
        data = _image_data(spec)
        plan = plan_pool(params.pool, spec.dataset, data, spec.seed)
        size = plan.size
        if params.mode == "replay":
            for i, budget in enumerate(params.budgets):
                if budget > size:
                    raise SpecError(f"sampling.budgets.{i}",
                                    f"{budget} exceeds the operational pool ({size} inputs)",
                                    f"1..{size}")
        elif params.mode == "assess":
            if params.budget > size:
                raise SpecError("sampling.budget",
                                f"{params.budget} exceeds the operational pool ({size} inputs)",
                                f"1..{size}")
        else:
            improve, _ = improvement_split(plan, params.improve.eval_fraction, spec.seed)
            need = params.budget * (params.improve.iterations + 1)
            if need > len(improve):
                raise SpecError(
                    "sampling.budget",
                    f"{params.budget} labels × {params.improve.iterations + 1} assessments = "
                    f"{need} exceed the {len(improve)} improvement inputs of the pool",
                    f"1..{len(improve) // (params.improve.iterations + 1)}")
        model = build_model(spec.model, data)
        layer = params.oracle_settings.layer
        if layer is not None:
            names = [n for n, _ in model.named_modules() if n]
            if layer not in names:
                raise SpecError("sampling.oracle_settings.layer", f"no module {layer!r}", names)
        elif not any(isinstance(m, nn.Linear) for m in model.modules()):
            raise SpecError("sampling.oracle_settings.layer",
                            "the model has no nn.Linear head; name a representation layer")
        custom = spec.model.name == "custom" or spec.model.factory is not None
        if custom and "ensemble" in params.used_oracles():
            raise SpecError("sampling.oracles", "the ensemble pseudo-oracle needs a zoo model "
                            "(members are retrained with other seeds)")

    def prepare(self, spec: CampaignSpec) -> Prepared:
        params = self.params(spec)
        data = _image_data(spec)
        plan = plan_pool(params.pool, spec.dataset, data, spec.seed)
        train = training_data(data, plan)
        model, model_digest = trained_model(spec.model, train, seed=spec.seed)
        x_pool, y_pool = build_pool(params.pool, plan, data, spec.seed)
        logits = batched_logits(model, x_pool)
        predicted = logits.argmax(1).numpy()
        labels = y_pool.numpy()
        correct = predicted == labels
        pool_digest = tensors_digest([x_pool, y_pool])
        scoring = ScoringContext(model, x_pool, logits, train, spec.model,
                                 params.oracle_settings, spec.seed)
        started = time.perf_counter()
        scores = {
            name: cached_scores(name, scoring, model_digest, pool_digest, train.digest)
            for name in ["msp", *params.used_oracles()]
        }
        scoring_seconds = time.perf_counter() - started
        pool = OperationalPool(predicted, scores, scoring.representation("pool").numpy())
        improve_ids, eval_ids = improvement_split(plan, params.improve.eval_fraction, spec.seed)
        context = SamplingContext(
            pool=pool, labels=labels, truth=float(correct.mean()), component=plan.component,
            origin_split=plan.base_split[plan.base_of], origin_row=plan.base_row[plan.base_of],
            shift_names=[s.name for s in params.pool.shifts], model=model,
            model_spec=spec.model, x_pool=x_pool, train=train,
            oracle_settings=params.oracle_settings, improve_ids=improve_ids, eval_ids=eval_ids,
        )
        test_logits = batched_logits(model, data.x_test)
        meta = {
            "model_digest": model_digest,
            "dataset_digest": digest({
                "pool": pool_digest, "train": train.digest,
                "oracles": sorted(scores), "oracle_settings":
                params.oracle_settings.model_dump(mode="json"),
            }),
            "pool_size": plan.size,
            "true_accuracy": float(correct.mean()),
            "test_accuracy": float((test_logits.argmax(1) == data.y_test).float().mean()),
            "test_size": len(data.y_test),
            "trained_on": len(train.y_train),
            "composition": pool_composition(params, plan, correct),
            "oracle_quality": oracle_quality(scores, correct, params.confidence),
            "oracle_scoring_seconds": scoring_seconds,
        }
        return Prepared(context=context, meta=meta)

    def to_device(self, context: Any, device: torch.device) -> Any:
        """The model's forward and backward passes on ``device`` (once per worker): improve
        cycles re-score and fine-tune there, behind a CPU boundary (inputs move in, outputs
        come back), so the pool statistics around the model stay numpy. Replay and assess
        trials only resample the cached scores: no tensor work to move."""
        ctx: SamplingContext = context
        return dataclasses.replace(ctx, model=device_boundary(ctx.model, device))

    def plan(self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
             previous: list[TrialRecord]) -> list[dict[str, Any]]:
        if round_index > 0:
            return []
        params = self.params(spec)
        trials: list[dict[str, Any]] = []
        if params.mode == "replay":
            for sampler in params.samplers:
                config = sampler.model_dump(mode="json")
                for budget in params.budgets:
                    for r in range(params.repetitions):
                        trials.append({
                            "mode": "replay", "sampler": config, "label": sampler.display,
                            "budget": budget, "repetition": r, "confidence": params.confidence,
                            "seed": _seed(spec.seed, sampler.display, budget, r),
                        })
        elif params.mode == "assess":
            for sampler in params.samplers:
                trials.append({
                    "mode": "assess", "sampler": sampler.model_dump(mode="json"),
                    "label": sampler.display, "budget": params.budget,
                    "confidence": params.confidence,
                    "seed": _seed(spec.seed, sampler.display, params.budget),
                })
        else:
            arms = list(params.samplers)
            if not any(s.name == "srs" for s in arms):
                arms.append(CONTROL)
            improve = params.improve
            for sampler in arms:
                for r in range(improve.repetitions):
                    trials.append({
                        "mode": "improve", "sampler": sampler.model_dump(mode="json"),
                        "label": sampler.display, "repetition": r, "budget": params.budget,
                        "iterations": improve.iterations, "epochs": improve.epochs,
                        "lr": improve.lr, "batch_size": improve.batch_size,
                        "replay_ratio": improve.replay_ratio, "confidence": params.confidence,
                        "seed": _seed(spec.seed, "improve", sampler.display, r),
                        # Common random numbers: every arm of repetition r fine-tunes with the
                        # same batch order and replayed inputs, so the paired gain over the
                        # control measures the labels chosen, not the training noise.
                        "finetune_seed": _seed(spec.seed, "finetune", r),
                    })
        return trials

    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._run_trial(context, trial) for trial in trials]

    @staticmethod
    def _run_trial(context: SamplingContext, trial: dict[str, Any]) -> dict[str, Any]:
        if trial["mode"] == "improve":
            return run_cycle(context, trial)
        started = time.perf_counter()
        sampler = SamplerSpec.model_validate(trial["sampler"])
        oracle = LabelOracle(context.labels, context.pool.predictions)
        result = SAMPLERS.get(sampler.name).impl(
            context.pool, oracle, trial["budget"], sampler.params,
            np.random.default_rng(trial["seed"]), trial["confidence"],
        )
        out = summary(result)
        out["labels_spent"] = oracle.labels_given
        out["truth"] = context.truth
        out["error"] = result.estimate - context.truth
        out["covered"] = bool(result.ci_low <= context.truth <= result.ci_high)
        if trial["mode"] == "assess":
            ids = result.sampled
            out["sampled_ids"] = [int(i) for i in ids]
            out["draw_probabilities"] = [float(p) for p in result.draw_probabilities]
            out["labels"] = [int(v) for v in context.labels[ids]]
            out["predictions"] = [int(v) for v in context.pool.predictions[ids]]
            out["shifts"] = [context.shift_names[c] for c in context.component[ids]]
            out["sources"] = ["test" if s == 0 else "heldout" for s in context.origin_split[ids]]
            out["source_rows"] = [int(v) for v in context.origin_row[ids]]
        out["sample_seconds"] = time.perf_counter() - started
        return out

    def aggregate(self, spec: CampaignSpec, meta: dict[str, Any],
                  records: list[TrialRecord]) -> Report:
        params = self.params(spec)
        truth = float(meta["true_accuracy"])
        size = int(meta["pool_size"])
        tables: dict[str, pd.DataFrame] = {}
        summary_out: dict[str, Any] = {
            "mode": params.mode, "pool_size": size, "true_accuracy": truth,
            "test_accuracy": meta["test_accuracy"], "confidence": params.confidence,
        }
        composition = pd.DataFrame(meta["composition"])
        if not composition.empty:
            cis = [rate_with_ci(int(c), int(n), params.confidence)
                   for c, n in zip(composition["correct"], composition["inputs"], strict=True)]
            composition["accuracy"] = [c["rate"] for c in cis]
            composition["accuracy_ci_low"] = [c["ci_low"] for c in cis]
            composition["accuracy_ci_high"] = [c["ci_high"] for c in cis]
        tables["pool"] = composition
        tables["oracles"] = pd.DataFrame(meta["oracle_quality"])
        ordered = sorted(records, key=lambda r: (r.trial["label"], r.trial.get("budget", 0),
                                                 r.trial.get("repetition", 0)))
        if params.mode == "replay":
            primary = self._aggregate_replay(params, ordered, truth, size, tables, summary_out)
        elif params.mode == "assess":
            primary = self._aggregate_assess(ordered, tables, summary_out)
        else:
            primary = self._aggregate_improve(params, ordered, tables, summary_out)
        return Report(kind=self.kind, summary=summary_out, tables=tables, primary=primary,
                      provenance=self.provenance(spec, meta))

    @staticmethod
    def _aggregate_replay(params: SamplingParams, records: list[TrialRecord], truth: float,
                          size: int, tables: dict[str, pd.DataFrame],
                          out: dict[str, Any]) -> str:
        rows = [{"sampler": r.trial["label"], "budget": r.trial["budget"],
                 "repetition": r.trial["repetition"], **r.result} for r in records]
        table = evaluation.replay_table(rows, truth, size, params.confidence)
        tables["replay"] = table
        out["coverage_by_budget"] = {
            str(label): {int(r.budget): float(r.coverage) for r in group.itertuples()}
            for label, group in table.groupby("sampler", sort=False)
        }
        out["under_coverage"] = [f"{r.sampler}@{r.budget}" for r in table.itertuples()
                                 if r.under_coverage]
        reference = min(params.budgets, key=lambda b: (abs(b - 200), b))
        best = evaluation.best_sampler(table, reference, params.confidence)
        out["reference_budget"] = reference
        if best is not None:
            out["best_sampler"] = best["sampler"]
            for key in ("rmse", "rmse_ratio_vs_srs", "rmse_ratio_vs_srs_theory", "coverage",
                        "coverage_ci_low", "coverage_ci_high", "ci_width", "labels_spent",
                        "srs_equivalent_labels", "labels_saved", "labels_saved_fraction",
                        "mispredictions_found"):
                out[f"best_{key}"] = best[key]
        return "replay"

    @staticmethod
    def _aggregate_assess(records: list[TrialRecord], tables: dict[str, pd.DataFrame],
                          out: dict[str, Any]) -> str:
        rows, sampled = [], []
        for r in records:
            res = r.result
            rows.append({"sampler": r.trial["label"], "budget": r.trial["budget"],
                         **{k: res[k] for k in ("estimate", "ci_low", "ci_high", "std_error",
                                                "labels_spent", "mispredictions_found",
                                                "ci_method", "truth", "covered")}})
            for i, pool_id in enumerate(res["sampled_ids"]):
                sampled.append({
                    "sampler": r.trial["label"], "order": i, "pool_id": pool_id,
                    "source": res["sources"][i], "source_row": res["source_rows"][i],
                    "shift": res["shifts"][i], "draw_probability": res["draw_probabilities"][i],
                    "label": res["labels"][i], "prediction": res["predictions"][i],
                    "correct": res["labels"][i] == res["predictions"][i],
                })
        tables["assess"] = pd.DataFrame(rows)
        tables["sampled"] = pd.DataFrame(sampled)
        out["estimates"] = {row["sampler"]: {"estimate": row["estimate"], "ci_low": row["ci_low"],
                                             "ci_high": row["ci_high"],
                                             "labels_spent": row["labels_spent"]}
                            for row in rows}
        return "assess"

    @staticmethod
    def _aggregate_improve(params: SamplingParams, records: list[TrialRecord],
                           tables: dict[str, pd.DataFrame], out: dict[str, Any]) -> str:
        rows = [{"arm": r.trial["label"], "repetition": r.trial["repetition"], **row}
                for r in records for row in r.result["rows"]]
        control = next((s.display for s in params.samplers if s.name == "srs"), CONTROL.display)
        cycle, per_iteration = evaluation.daic_tables(rows, control, params.confidence)
        tables["daic"] = cycle
        tables["daic_summary"] = per_iteration
        last = per_iteration[per_iteration["iteration"] == params.improve.iterations]
        out["control"] = control
        out["final_accuracy"] = {row.arm: row.operational_accuracy for row in last.itertuples()}
        arms = [s.display for s in params.samplers if s.display != control]
        if arms:
            first = last[last["arm"] == arms[0]].iloc[0]
            out["daic_arm"] = arms[0]
            out["daic_gain"] = float(first["gain_vs_control"])
            out["daic_gain_ci_low"] = float(first["gain_ci_low"])
            out["daic_gain_ci_high"] = float(first["gain_ci_high"])
        start = per_iteration[per_iteration["iteration"] == 0]
        out["initial_accuracy"] = float(start["operational_accuracy"].mean())
        return "daic_summary"
