"""The watermark-robustness engine: embed each scheme once per seed, calibrate the ownership
test on null models, sweep every attack over its strengths, and find the break points.

Planning rounds (each round's trials are independent and run in parallel):

0. ``sensitivity`` — one per seed: the Fourier perturbation map of that seed's trained model
   (arXiv 2208.03944, steps 1–2), cached; the frequency scheme's keys are drawn from it.
1. ``embed`` — one per (scheme, seed): key generation and embedding, cached on disk by content
   (:mod:`~faultlab.workers.watermark.cache`); reports clean/trigger accuracy, PSNR, SSIM.
2. ``null`` — one per null model (trained independently, not watermarked): its answers to
   every key; and ``attack`` — one per (scheme, attack, strength, seed): the attack applied to
   the cached watermarked model, its test accuracy and trigger matches.

Trial results hold raw counts; ``aggregate`` does the statistics (``verify.py``): calibrated
nulls, p-values, the false-claim rate on the null models, CIs over seeds, break points.
Every result records where its watermarked model came from (``embed_source``), so a campaign
proves that each (model, scheme, seed) was embedded once and reused across the sweep.
"""

from __future__ import annotations

import copy
import time
from collections import Counter, defaultdict
from collections.abc import Callable
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
from faultlab.stats import mean_with_ci, rate_with_ci
from faultlab.version import code_version
from faultlab.workers.engine import Engine, Prepared, TrialRecord
from faultlab.workers.watermark import cache
from faultlab.workers.watermark.attacks.base import AttackContext, get_attack, run_attack
from faultlab.workers.watermark.catalog import CHAIN
from faultlab.workers.watermark.embedding import final_linear, logits, predictions, resize_outputs
from faultlab.workers.watermark.imaging import psnr, radial_fraction, ssim
from faultlab.workers.watermark.params import AttackSpec, WatermarkParams, attack_info, sweep
from faultlab.workers.watermark.schemes.base import (
    SchemeContext,
    WatermarkKey,
    get_scheme,
    scheme_params,
)
from faultlab.workers.watermark.sensitivity import SensitivityMap, analyse
from faultlab.workers.watermark.verify import (
    Evidence,
    NullRate,
    min_matches,
    null_rate,
    ownership_p_value,
)
from faultlab.workers.zoo import ImageData, build_model, load_dataset, trained_model

ENGINE_VERSION = "1"
#: Null models are trained with seeds far from the repetition seeds.
NULL_SEED_OFFSET = 1_000_003


@dataclass
class WatermarkContext:
    """What every shard gets: the spec, the data and each seed's trained model."""

    spec: CampaignSpec
    data: ImageData
    base: dict[int, tuple[nn.Module, str]]
    """Repetition seed -> (trained model, digest)."""

    @property
    def params(self) -> WatermarkParams:
        return _params(self.spec)

    def eval_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data.split(self.spec.dataset.split)
        size = self.spec.dataset.size
        return (x[:size], y[:size]) if size else (x, y)


def _params(spec: CampaignSpec) -> WatermarkParams:
    params = spec.params
    if not isinstance(params, WatermarkParams):
        raise SpecError("kind", "not a watermark campaign")
    return params


def _image_data(spec: CampaignSpec) -> ImageData:
    data = load_dataset(spec.dataset, task="image")
    if not isinstance(data, ImageData):
        raise SpecError("dataset.name", "the watermark engine needs an image dataset")
    return data


def _seeds(spec: CampaignSpec) -> list[int]:
    return [spec.seed + r for r in range(_params(spec).seeds)]


def _attack_labels(attacks: list[AttackSpec]) -> list[str]:
    """A readable, unique label per attack spec: the name, its parameters when given
    (``ftal(lr=0.01)``), a chain's steps (``chain(prune@*>ftal@2)``), ``#i`` if still ambiguous."""

    def with_params(name: str, params: dict[str, Any]) -> str:
        if not params:
            return name
        return name + "(" + ",".join(f"{k}={params[k]}" for k in sorted(params)) + ")"

    labels = []
    for attack in attacks:
        if attack.name == CHAIN:
            parts = [
                f"{with_params(s.name, s.params)}@{'*' if s.strength is None else f'{s.strength:g}'}"
                for s in attack.steps
            ]
            labels.append("chain(" + ">".join(parts) + ")")
        else:
            labels.append(with_params(attack.name, attack.params))
    counts = Counter(labels)
    seen: Counter[str] = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(f"{label}#{seen[label]}" if counts[label] > 1 else label)
    return out


def _fresh_builder(spec: ModelSpec, data: ImageData, seed: int) -> Callable[[int], nn.Module]:
    """Untrained models of the campaign's architecture, seeded, with a chosen output count."""

    def build(num_outputs: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + 97)
            model = build_model(spec, data)
            if num_outputs != data.num_classes:
                head = final_linear(model, data.num_classes)
                if head is None:
                    raise SpecError("model.name", "the model has no final nn.Linear with K outputs")
                model = resize_outputs(model, head[0], num_outputs)
        return model

    return build


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, preprocess: Any = None) -> int:
    return int((predictions(logits(model, x, preprocess)) == y).sum())


class WatermarkEngine(Engine):
    """Watermark-robustness campaigns (see the module docstring)."""

    kind = "watermark"
    version = ENGINE_VERSION

    # ------------------------------------------------------------------ validate / prepare

    def validate(self, spec: CampaignSpec) -> None:
        params = _params(spec)
        data = _image_data(spec)
        build_model(spec.model, data)
        for i, scheme in enumerate(params.schemes):
            field = f"watermark.schemes[{i}]"
            get_scheme(scheme.name, f"{field}.name").check(
                scheme_params(scheme.name, scheme.params), data, params.trigger_size, field
            )
        for i, attack in enumerate(params.attacks):
            names = [s.name for s in attack.steps] if attack.name == CHAIN else [attack.name]
            for name in names:
                get_attack(name, f"watermark.attacks[{i}].name")
        cells = len(params.schemes) * params.seeds * sum(len(sweep(a)) for a in params.attacks)
        total = cells + params.seeds * (1 + len(params.schemes)) + params.verification.null_models
        if total > spec.execution.max_trials:
            raise SpecError(
                "watermark.attacks", f"the plan has {total} trials, over execution.max_trials "
                f"= {spec.execution.max_trials}",
            )

    def prepare(self, spec: CampaignSpec) -> Prepared:
        data = _image_data(spec)
        base = {s: trained_model(spec.model, data, seed=s) for s in _seeds(spec)}
        digests = [base[s][1] for s in sorted(base)]
        meta = {
            "model_digest": digest(digests),
            "dataset_digest": data.digest,
            "base_digests": {str(s): base[s][1] for s in sorted(base)},
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
        }
        return Prepared(WatermarkContext(spec, data, base), meta)

    # ------------------------------------------------------------------ plan

    def plan(
        self, spec: CampaignSpec, meta: dict[str, Any], round_index: int, previous: list[TrialRecord]
    ) -> list[dict[str, Any]]:
        params = _params(spec)
        seeds = _seeds(spec)
        schemes = [s.model_dump(mode="json") for s in params.schemes]
        phases = ["embed", "evaluate"]
        if params.sensitivity.enabled or any(s["name"] == "frequency" for s in schemes):
            phases.insert(0, "sensitivity")
        phase = phases[round_index] if round_index < len(phases) else None
        if phase == "sensitivity":
            options = params.sensitivity.model_dump(mode="json", exclude={"enabled"})
            return [{"type": "sensitivity", "seed": s, "sensitivity": options} for s in seeds]
        if phase == "embed":
            return [
                {"type": "embed", **self._embed_fields(params, i, scheme), "seed": s}
                for i, scheme in enumerate(schemes)
                for s in seeds
            ]
        if phase == "evaluate":
            trials: list[dict[str, Any]] = [
                {
                    "type": "null",
                    "null_seed": spec.seed + NULL_SEED_OFFSET + j,
                    "keys": [
                        {**self._embed_fields(params, i, scheme), "seed": s}
                        for i, scheme in enumerate(schemes)
                        for s in seeds
                    ],
                }
                for j in range(params.verification.null_models)
            ]
            labels = _attack_labels(params.attacks)
            for a, attack in enumerate(params.attacks):
                for strength in sweep(attack):
                    for i, scheme in enumerate(schemes):
                        for s in seeds:
                            trials.append({
                                "type": "attack",
                                **self._embed_fields(params, i, scheme),
                                "seed": s,
                                "attack_index": a,
                                "attack_label": labels[a],
                                "attack": attack.model_dump(mode="json"),
                                "strength": strength,
                                "attacker_fraction": params.attacker_fraction,
                            })
            return trials
        return []

    @staticmethod
    def _embed_fields(params: WatermarkParams, index: int, scheme: dict[str, Any]) -> dict[str, Any]:
        """Everything that determines a watermarked model besides the base model and seed."""
        validated = scheme_params(scheme["name"], scheme["params"]).model_dump(mode="json")
        return {
            "scheme_index": index,
            "scheme": {"name": scheme["name"], "params": validated},
            "embed": params.embed.model_dump(mode="json"),
            "trigger_size": params.trigger_size,
            "sensitivity": params.sensitivity.model_dump(mode="json", exclude={"enabled"})
            if scheme["name"] == "frequency" else None,
        }

    # ------------------------------------------------------------------ run

    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ctx: WatermarkContext = context
        runners = {
            "sensitivity": self._run_sensitivity,
            "embed": self._run_embed,
            "null": self._run_null,
            "attack": self._run_attack,
        }
        return [runners[t["type"]](ctx, t) for t in trials]

    def outcomes_equal(self, stored: dict[str, Any], replayed: dict[str, Any]) -> bool:
        """Where a cached artifact came from is provenance, not an outcome."""
        ignore = {"embed_source", "sensitivity_source", "embed_sources"}
        return super().outcomes_equal(
            {k: v for k, v in stored.items() if k not in ignore},
            {k: v for k, v in replayed.items() if k not in ignore},
        )

    def _sensitivity(self, ctx: WatermarkContext, seed: int, options: dict[str, Any]) -> tuple[SensitivityMap, cache.Source]:
        model, model_digest = ctx.base[seed]
        key = digest({"version": ENGINE_VERSION, "base": model_digest, "data": ctx.data.digest, "params": options, "seed": seed})

        def compute() -> dict[str, Any]:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + 5)
            ids = torch.randperm(len(ctx.data.x_train), generator=gen)[: options["probe_size"]]
            sens = analyse(
                model, ctx.data.x_train[ids], ctx.data.y_train[ids], epsilon=options["epsilon"],
                repeats=options["repeats"], clusters=options["clusters"], seed=seed,
            )
            return {"map": sens.to_dict()}

        value, source = cache.load_or_compute("sensitivity", key, compute, {"seed": seed})
        return SensitivityMap.from_dict(value["map"]), source

    def _run_sensitivity(self, ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        sens, source = self._sensitivity(ctx, trial["seed"], trial["sensitivity"])
        return {**sens.to_dict(), "sensitivity_source": source, "elapsed_seconds": time.perf_counter() - started}

    def _watermarked(self, ctx: WatermarkContext, trial: dict[str, Any]) -> tuple[nn.Module, WatermarkKey, cache.Source]:
        """The watermarked model and key of (scheme, seed): memory → disk → embed once."""
        seed = trial["seed"]
        base_model, base_digest = ctx.base[seed]
        scheme_spec = trial["scheme"]
        scheme = get_scheme(scheme_spec["name"])
        params = scheme_params(scheme_spec["name"], scheme_spec["params"])
        fields = {k: trial[k] for k in ("scheme", "embed", "trigger_size", "sensitivity")}
        key = digest({"version": ENGINE_VERSION, "base": base_digest, "data": ctx.data.digest, "seed": seed, **fields})
        build_fresh = _fresh_builder(ctx.spec.model, ctx.data, seed)

        def compute() -> dict[str, Any]:
            from faultlab.workers.watermark.params import EmbedParams

            sens_options = trial["sensitivity"] or ctx.params.sensitivity.model_dump(mode="json", exclude={"enabled"})
            sctx = SchemeContext(
                data=ctx.data, model=base_model, seed=seed, trigger_size=trial["trigger_size"],
                field=f"watermark.schemes[{trial['scheme_index']}]",
                sensitivity=lambda: self._sensitivity(ctx, seed, sens_options)[0],
                build_fresh=build_fresh,
            )
            started = time.perf_counter()
            wm_key = scheme.keygen(sctx, params)
            model = scheme.embed(sctx, wm_key, params, EmbedParams.model_validate(trial["embed"]))
            return {
                "state_dict": model.state_dict(),
                "key": wm_key.state(),
                "embed_seconds": time.perf_counter() - started,
            }

        describe = {"scheme": scheme_spec["name"], "seed": seed}
        value, source = cache.load_or_compute("embedding", key, compute, describe)
        wm_key = WatermarkKey.from_state(value["key"])
        model = copy.deepcopy(base_model)
        if wm_key.num_outputs != ctx.data.num_classes:
            head = final_linear(model, ctx.data.num_classes)
            if head is None:
                raise SpecError("model.name", "the model has no final nn.Linear with K outputs")
            model = resize_outputs(model, head[0], wm_key.num_outputs)
        model.load_state_dict(value["state_dict"])
        model.eval()
        return model, wm_key, source

    def _run_embed(self, ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        model, key, source = self._watermarked(ctx, trial)
        scheme = get_scheme(trial["scheme"]["name"])
        x, y = ctx.eval_split()
        base_model, _ = ctx.base[trial["seed"]]
        result: dict[str, Any] = {
            "test_n": len(y),
            "base_test_correct": _correct(base_model, x, y),
            "test_correct": _correct(model, x, y),
            "evidence": scheme.verify(model, key).to_dict(),
            "null": key.null,
            "rules": ["primary"] + (["backup"] if key.backup_labels is not None else []),
            "num_outputs": key.num_outputs,
            "key_info": key.info,
            "embed_source": source,
            "psnr": None,
            "ssim": None,
        }
        if key.carriers is not None:
            low, high = float(ctx.data.x_train.min()), float(ctx.data.x_train.max())
            result["psnr"] = float(psnr(key.carriers, key.triggers, high - low).mean())
            result["ssim"] = float(ssim(key.carriers, key.triggers, high - low).mean())
        result["elapsed_seconds"] = time.perf_counter() - started
        return result

    def _run_null(self, ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        model, _ = trained_model(ctx.spec.model, ctx.data, seed=trial["null_seed"])
        x, y = ctx.eval_split()
        answers, sources = [], []
        for key_trial in trial["keys"]:
            _, key, source = self._watermarked(ctx, key_trial)
            scheme = get_scheme(key_trial["scheme"]["name"])
            answers.append({"scheme_index": key_trial["scheme_index"], "seed": key_trial["seed"], **scheme.verify(model, key).to_dict()})
            sources.append(source)
        return {
            "test_n": len(y),
            "test_correct": _correct(model, x, y),
            "answers": answers,
            "embed_sources": sources,
            "elapsed_seconds": time.perf_counter() - started,
        }

    def _run_attack(self, ctx: WatermarkContext, trial: dict[str, Any]) -> dict[str, Any]:
        model, key, source = self._watermarked(ctx, trial)
        scheme = get_scheme(trial["scheme"]["name"])
        actx = AttackContext(
            data=ctx.data,
            seed=trial["seed"],
            attacker_fraction=trial["attacker_fraction"],
            build_fresh=_fresh_builder(ctx.spec.model, ctx.data, trial["seed"] + 7),
            field=f"watermark.attacks[{trial['attack_index']}]",
        )
        started = time.perf_counter()
        attacked = run_attack(model, AttackSpec.model_validate(trial["attack"]), trial["strength"], actx)
        attack_seconds = time.perf_counter() - started
        x, y = ctx.eval_split()
        return {
            "test_n": len(y),
            "test_correct": _correct(attacked.model, x, y, attacked.preprocess),
            "evidence": scheme.verify(attacked.model, key, attacked.preprocess).to_dict(),
            "embed_source": source,
            "attack_seconds": attack_seconds,
        }

    # ------------------------------------------------------------------ aggregate

    def aggregate(self, spec: CampaignSpec, meta: dict[str, Any], records: list[TrialRecord]) -> Report:
        params = _params(spec)
        ver = params.verification
        by_type: dict[str, list[TrialRecord]] = defaultdict(list)
        for r in records:
            by_type[r.trial["type"]].append(r)
        scheme_names = {i: s.name for i, s in enumerate(params.schemes)}
        k = int(meta["num_classes"])

        # Null calibration per (scheme, seed) and rule, and leave-one-out false claims.
        answers: dict[tuple[int, int], list[tuple[int, Evidence]]] = defaultdict(list)
        for r in by_type["null"]:
            for a in r.result["answers"]:
                answers[(a["scheme_index"], a["seed"])].append((r.trial["null_seed"], Evidence.from_dict(a)))
        primary_null = {(r.trial["scheme_index"], r.trial["seed"]): r.result["null"] for r in by_type["embed"]}
        key_rules = {(r.trial["scheme_index"], r.trial["seed"]): r.result["rules"] for r in by_type["embed"]}

        def nulls_for(cell: tuple[int, int], exclude: int | None = None) -> dict[str, NullRate]:
            evs = [e for s, e in answers.get(cell, []) if s != exclude]
            rates = {}
            for rule in key_rules[cell]:
                kind = primary_null[cell] if rule == "primary" else "derangement"
                counts = [e.matches(rule) or 0 for e in evs]
                n = evs[0].n if evs else 0
                rates[rule] = null_rate(kind, k, counts, n, confidence=ver.null_confidence, floor=ver.min_null_rate)
            return rates

        calibrated = {cell: nulls_for(cell) for cell in primary_null}
        cal_rows, null_rows = [], []
        for (i, seed), rates in sorted(calibrated.items()):
            n = params.trigger_size
            for rule, rate in rates.items():
                cal_rows.append({
                    "scheme": scheme_names[i], "seed": seed, "rule": rule, "p0": rate.p0, "source": rate.source,
                    "null_matches": rate.null_matches, "null_trials": rate.null_trials,
                    "min_matches": min_matches(n, rate.p0, ver.alpha), "n": n, "alpha": ver.alpha,
                })
            for null_seed, ev in answers.get((i, seed), []):
                p, rule = ownership_p_value(ev, nulls_for((i, seed), exclude=null_seed))
                null_rows.append({
                    "null_seed": null_seed, "scheme": scheme_names[i], "seed": seed,
                    "primary": ev.primary, "backup": ev.backup, "n": ev.n, "p_value": p, "rule": rule,
                    "false_claim": p <= ver.alpha,
                })

        # The watermarked models themselves.
        embed_rows = []
        wm_test: dict[tuple[int, int], float] = {}
        for r in sorted(by_type["embed"], key=lambda r: (r.trial["scheme_index"], r.trial["seed"])):
            cell = (r.trial["scheme_index"], r.trial["seed"])
            ev = Evidence.from_dict(r.result["evidence"])
            p, rule = ownership_p_value(ev, calibrated[cell])
            test_acc = r.result["test_correct"] / r.result["test_n"]
            base_acc = r.result["base_test_correct"] / r.result["test_n"]
            wm_test[cell] = test_acc
            embed_rows.append({
                "scheme": scheme_names[cell[0]], "seed": cell[1], "base_test_acc": base_acc, "test_acc": test_acc,
                "clean_acc_drop": 100 * (base_acc - test_acc), "trigger_acc": _wm_acc(ev, rule),
                "p_value": p, "rule": rule, "verified": p <= ver.alpha, "psnr": r.result["psnr"],
                "ssim": r.result["ssim"], "num_outputs": r.result["num_outputs"],
                "embed_source": r.result["embed_source"], "elapsed_seconds": r.result["elapsed_seconds"],
            })

        # Attack cells.
        labels = _attack_labels(params.attacks)
        cell_rows = []
        for r in by_type["attack"]:
            t = r.trial
            cell = (t["scheme_index"], t["seed"])
            if cell not in calibrated:
                continue  # its embed trial failed: nothing to compare against
            ev = Evidence.from_dict(r.result["evidence"])
            p, rule = ownership_p_value(ev, calibrated[cell])
            test_acc = r.result["test_correct"] / r.result["test_n"]
            cell_rows.append({
                "scheme": scheme_names[cell[0]], "attack": t["attack_label"], "attack_index": t["attack_index"],
                "strength": t["strength"], "seed": cell[1], "wm_acc": _wm_acc(ev, rule), "test_acc": test_acc,
                "test_acc_drop": 100 * (wm_test[cell] - test_acc), "matches": _matches(ev, rule), "n": ev.n,
                "primary_acc": None if ev.primary is None else ev.primary / ev.n,
                "backup_acc": None if ev.backup is None else ev.backup / ev.n,
                "p_value": p, "rule": rule, "verified": p <= ver.alpha, "num_outputs": ev.num_outputs,
                "embed_source": r.result["embed_source"], "attack_seconds": r.result["attack_seconds"],
            })
        cells = pd.DataFrame(cell_rows)
        robustness, breaks = _robustness(cells, params, labels)

        sources = [r.result["embed_source"] for r in by_type["embed"] + by_type["attack"]]
        sources += [s for r in by_type["null"] for s in r.result["embed_sources"]]
        computed = sources.count("computed")
        embed_cells = len(by_type["embed"])
        attack_computed = sum(r.result["embed_source"] == "computed" for r in by_type["attack"])
        null_claims = [row["false_claim"] for row in null_rows]
        embeddings = pd.DataFrame(embed_rows)
        summary: dict[str, Any] = {
            "schemes": {},
            "false_claims": int(sum(null_claims)),
            "false_claim_rate": rate_with_ci(int(sum(null_claims)), len(null_claims)),
            "null_models": len(by_type["null"]),
            "null_test_acc": mean_with_ci([r.result["test_correct"] / r.result["test_n"] for r in by_type["null"]]),
            "alpha": ver.alpha,
            "embed_cells": embed_cells,
            "attack_cells": len(by_type["attack"]),
            "embeddings_computed": computed,
            "embed_reuse": computed <= embed_cells and attack_computed == 0,
            "break_points": {
                name: {row["attack"]: row["break_strength"] for row in breaks.to_dict("records") if row["scheme"] == name}
                for name in dict.fromkeys(scheme_names.values())
            },
        }
        for name in dict.fromkeys(scheme_names.values()):
            rows = embeddings[embeddings["scheme"] == name] if len(embeddings) else embeddings
            if len(rows):
                summary["schemes"][name] = {
                    "clean_acc_drop": mean_with_ci(rows["clean_acc_drop"].tolist()),
                    "trigger_acc": mean_with_ci(rows["trigger_acc"].tolist()),
                    "p_value_max": float(rows["p_value"].max()),
                    "verified": rate_with_ci(int(rows["verified"].sum()), len(rows)),
                    "psnr": mean_with_ci([v for v in rows["psnr"].tolist() if v is not None]),
                    "ssim": mean_with_ci([v for v in rows["ssim"].tolist() if v is not None]),
                }
        tables = {
            "robustness": robustness,
            "break_points": breaks,
            "cells": cells,
            "embeddings": embeddings,
            "calibration": pd.DataFrame(cal_rows),
            "null_models": pd.DataFrame(null_rows),
            "sensitivity": _sensitivity_table(by_type["sensitivity"]),
        }
        provenance = {
            "spec_hash": spec.spec_hash,
            "code_version": code_version(),
            "seed": spec.seed,
            "seeds": _seeds(spec),
            "engine_version": ENGINE_VERSION,
            "model_digest": meta["model_digest"],
            "dataset_digest": meta["dataset_digest"],
            "base_digests": meta.get("base_digests", {}),
        }
        return Report(self.kind, summary=summary, tables=tables, primary="robustness", provenance=provenance)


def _matches(ev: Evidence, rule: str | None) -> int:
    """Matches of the rule that decided the test (0 when no rule applies)."""
    return int(ev.matches(rule) or 0) if rule else 0


def _wm_acc(ev: Evidence, rule: str | None) -> float:
    """Watermark accuracy: the deciding rule's share of triggers answered as the key says."""
    return _matches(ev, rule) / ev.n if ev.n else float("nan")


def _robustness(cells: pd.DataFrame, params: WatermarkParams, labels: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (scheme, attack, strength): means with CIs over seeds; per (scheme, attack): the
    break point — the weakest strength at which most seeds fail verification while the mean
    test-accuracy drop stays under the budget."""
    rows: list[dict[str, Any]] = []
    break_rows: list[dict[str, Any]] = []
    if cells.empty:
        return pd.DataFrame(rows), pd.DataFrame(break_rows)
    for (scheme, index), group in cells.groupby(["scheme", "attack_index"], sort=False):
        attack = params.attacks[int(index)]
        info = attack_info(attack)
        order = sweep(attack)
        broken_at = None
        per_seed: dict[int, float | None] = {}
        for strength in order:
            g = group[group["strength"] == strength]
            if g.empty:
                continue
            wm = mean_with_ci(g["wm_acc"].tolist())
            test = mean_with_ci(g["test_acc"].tolist())
            drop = mean_with_ci(g["test_acc_drop"].tolist())
            verified = rate_with_ci(int(g["verified"].sum()), len(g))
            within = drop["mean"] < params.budget_points
            breaks = verified["rate"] < 0.5 and within
            if breaks and broken_at is None:
                broken_at = strength
            for row in g.itertuples():
                seed = int(row.seed)
                if seed not in per_seed:
                    per_seed[seed] = None
                if per_seed[seed] is None and not row.verified and row.test_acc_drop < params.budget_points:
                    per_seed[seed] = strength
            rows.append({
                "scheme": scheme, "attack": labels[int(index)], "strength": strength, "knob": info.knob,
                "wm_acc": wm["mean"], "wm_acc_ci_low": wm["ci_low"], "wm_acc_ci_high": wm["ci_high"],
                "test_acc": test["mean"], "test_acc_ci_low": test["ci_low"], "test_acc_ci_high": test["ci_high"],
                "test_acc_drop": drop["mean"], "verified_rate": verified["rate"],
                "verified_ci_low": verified["ci_low"], "verified_ci_high": verified["ci_high"],
                "p_value_median": float(np.median(g["p_value"])), "p_value_max": float(g["p_value"].max()),
                "seeds": len(g), "breaks": breaks,
            })
        break_rows.append({
            "scheme": scheme, "attack": labels[int(index)], "knob": info.knob, "stronger": info.stronger,
            "break_strength": broken_at, "broken": broken_at is not None,
            "budget_points": params.budget_points, "seed_break_strengths": [per_seed[s] for s in sorted(per_seed)],
            "strengths": list(order),
        })
    return pd.DataFrame(rows), pd.DataFrame(break_rows)


def _sensitivity_table(records: list[TrialRecord]) -> pd.DataFrame:
    """Per frequency: damage (mean KL) and accuracy drop with CIs over seeds, cluster rank."""
    if not records:
        return pd.DataFrame()
    maps = [SensitivityMap.from_dict({k: r.result[k] for k in (
        "height", "width", "frequencies", "damage", "accuracy_drop", "rank", "centroids")}) for r in records]
    first = maps[0]
    rows = []
    for j, (u, v) in enumerate(first.frequencies):
        damage = mean_with_ci([m.damage[j] for m in maps])
        drop = mean_with_ci([m.accuracy_drop[j] for m in maps])
        ranks = Counter(m.rank[j] for m in maps)
        rows.append({
            "u": u, "v": v, "radial": float(radial_fraction(u, v, first.height, first.width)),
            "damage": damage["mean"], "damage_ci_low": damage["ci_low"], "damage_ci_high": damage["ci_high"],
            "accuracy_drop": drop["mean"], "accuracy_drop_ci_low": drop["ci_low"],
            "accuracy_drop_ci_high": drop["ci_high"], "cluster_rank": ranks.most_common(1)[0][0],
            "height": first.height, "width": first.width, "seeds": len(maps),
        })
    return pd.DataFrame(rows)

