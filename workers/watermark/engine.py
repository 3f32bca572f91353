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

Shards run on the task's device: :meth:`WatermarkEngine.to_device` moves the context there once
per worker (``runs.context_on``); see ``runs.py`` for what may and may not depend on it.
"""

from __future__ import annotations

from typing import Any

import torch

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.report import Report
from faultlab.spec import CampaignSpec
from faultlab.workers.engine import Engine, Prepared, TrialRecord
from faultlab.workers.watermark.attacks.base import ATTACKS
from faultlab.workers.watermark.catalog import CHAIN
from faultlab.workers.watermark.params import WatermarkParams, sweep
from faultlab.workers.watermark.report import attack_labels, report_tables
from faultlab.workers.watermark.runs import RUNNERS, WatermarkContext, context_on
from faultlab.workers.watermark.schemes.base import SCHEMES
from faultlab.workers.zoo import ImageData, build_model, load_dataset, trained_model

#: Null models are trained with seeds far from the repetition seeds.
NULL_SEED_OFFSET = 1_000_003


def _image_data(spec: CampaignSpec) -> ImageData:
    data = load_dataset(spec.dataset, task="image")
    if not isinstance(data, ImageData):
        raise SpecError("dataset.name", "the watermark engine needs an image dataset")
    return data


def _seeds(spec: CampaignSpec, params: WatermarkParams) -> list[int]:
    return [spec.seed + r for r in range(params.seeds)]


class WatermarkEngine(Engine[WatermarkParams]):
    """Watermark-robustness campaigns (see the module docstring)."""

    kind = "watermark"
    version = "2"
    params_type = WatermarkParams
    provenance_fields = frozenset({"embed_source", "sensitivity_source", "embed_sources"})

    # ------------------------------------------------------------------ validate / prepare

    def validate(self, spec: CampaignSpec) -> None:
        params = self.params(spec)
        data = _image_data(spec)
        build_model(spec.model, data)
        for i, scheme in enumerate(params.schemes):
            field = f"watermark.schemes[{i}]"
            SCHEMES.get(scheme.name, f"{field}.name").impl().check(
                scheme.params, data, params.trigger_size, field
            )
        for i, attack in enumerate(params.attacks):
            names = [s.name for s in attack.steps] if attack.name == CHAIN else [attack.name]
            for name in names:
                ATTACKS.get(name, f"watermark.attacks[{i}].name")
        cells = len(params.schemes) * params.seeds * sum(len(sweep(a)) for a in params.attacks)
        total = cells + params.seeds * (1 + len(params.schemes)) + params.verification.null_models
        if total > spec.execution.max_trials:
            raise SpecError(
                "watermark.attacks", f"the plan has {total} trials, over execution.max_trials "
                f"= {spec.execution.max_trials}",
            )

    def prepare(self, spec: CampaignSpec) -> Prepared:
        params = self.params(spec)
        data = _image_data(spec)
        base = {s: trained_model(spec.model, data, seed=s) for s in _seeds(spec, params)}
        digests = [base[s][1] for s in sorted(base)]
        meta = {
            "model_digest": digest(digests),
            "dataset_digest": data.digest,
            "base_digests": {str(s): base[s][1] for s in sorted(base)},
            "num_classes": data.num_classes,
            "input_shape": list(data.input_shape),
        }
        return Prepared(WatermarkContext(spec, data, base, params, self.version), meta)

    # ------------------------------------------------------------------ plan

    def plan(
        self, spec: CampaignSpec, meta: dict[str, Any], round_index: int,
        previous: list[TrialRecord],
    ) -> list[dict[str, Any]]:
        params = self.params(spec)
        seeds = _seeds(spec, params)
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
            labels = attack_labels(params.attacks)
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
    def _embed_fields(
        params: WatermarkParams, index: int, scheme: dict[str, Any]
    ) -> dict[str, Any]:
        """Everything that determines a watermarked model besides the base model and seed."""
        validated = SCHEMES.parse_params(scheme["name"], scheme["params"]).model_dump(mode="json")
        return {
            "scheme_index": index,
            "scheme": {"name": scheme["name"], "params": validated},
            "embed": params.embed.model_dump(mode="json"),
            "trigger_size": params.trigger_size,
            "sensitivity": params.sensitivity.model_dump(mode="json", exclude={"enabled"})
            if scheme["name"] == "frequency" else None,
        }

    # ------------------------------------------------------------------ run

    def to_device(self, context: Any, device: torch.device) -> Any:
        """The data and every seed's trained model on ``device``, once per worker
        (:func:`~faultlab.workers.watermark.runs.context_on`; the given context is unchanged).
        Watermarked, attacked, null and fresh models are then built on that device by the
        trials themselves."""
        return context_on(context, device)

    def run_shard(self, context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ctx: WatermarkContext = context
        return [RUNNERS[t["type"]](ctx, t) for t in trials]

    # ------------------------------------------------------------------ aggregate

    def aggregate(
        self, spec: CampaignSpec, meta: dict[str, Any], records: list[TrialRecord]
    ) -> Report:
        params = self.params(spec)
        tables, summary = report_tables(params, meta, records)
        provenance = self.provenance(spec, meta, seeds=_seeds(spec, params),
                                     base_digests=meta.get("base_digests", {}))
        return Report(self.kind, summary=summary, tables=tables, primary="robustness",
                      provenance=provenance)
