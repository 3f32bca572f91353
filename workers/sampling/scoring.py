"""Pseudo-oracle scores of the operational pool, cached on disk, and their quality.

Every pseudo-oracle scores the whole pool once per (model, pool, settings); the scores are
kept under ``$FAULTLAB_HOME/sampling`` by content digest so re-running a campaign (or another
campaign on the same pool) does not score again. ``oracle_quality`` measures each oracle as a
failure detector (AUROC, Hanley & McNeil 1982 CI) and as an online accuracy estimator.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faultlab.hashing import digest
from faultlab.workers.artifact_cache import ArtifactCache
from faultlab.workers.sampling import evaluation
from faultlab.workers.sampling.operational import PoolPlan
from faultlab.workers.sampling.oracles import ORACLES, ScoringContext
from faultlab.workers.sampling.params import SamplingParams
from faultlab.workers.sampling.samplers import OracleScores

#: Pseudo-oracle scores: ``$FAULTLAB_HOME/sampling/oracle-<name>-<key[:24]>.npz``.
_ORACLE_SCORES = ArtifactCache("sampling")


def cached_scores(name: str, scoring: ScoringContext, model_digest: str, pool_digest: str,
                  train_digest: str) -> OracleScores:
    """Scores of one pseudo-oracle, from ``$FAULTLAB_HOME/sampling`` when already computed
    for this model, pool and settings."""
    key = digest({"oracle": name, "model": model_digest, "pool": pool_digest,
                  "train": train_digest, "seed": scoring.seed,
                  "settings": scoring.settings.model_dump(mode="json"),
                  "model_spec": scoring.model_spec.model_dump(mode="json")})
    path = _ORACLE_SCORES.get(f"oracle-{name}-{key[:24]}", ".npz")
    if path is not None:
        with np.load(path) as stored:
            return OracleScores(stored["suspicion"],
                                stored["p_correct"] if "p_correct" in stored else None)
    scores = ORACLES.get(name).impl(scoring)
    arrays: dict[str, Any] = {"suspicion": scores.suspicion}
    if scores.p_correct is not None:
        arrays["p_correct"] = scores.p_correct
    _ORACLE_SCORES.put(f"oracle-{name}-{key[:24]}", lambda out: np.savez(out, **arrays),
                       ".npz")
    return scores


def pool_composition(params: SamplingParams, plan: PoolPlan,
                     correct: np.ndarray) -> list[dict[str, Any]]:
    """Inputs and correct predictions per (shift, source split) of the operational pool."""
    rows = []
    origin = plan.base_split[plan.base_of]
    for j, shift in enumerate(params.pool.shifts):
        for split, name in ((0, "test"), (1, "heldout")):
            where = (plan.component == j) & (origin == split)
            if where.any():
                rows.append({"shift": shift.name, "severity": shift.severity,
                             "source": name, "inputs": int(where.sum()),
                             "correct": int(correct[where].sum())})
    return rows


def oracle_quality(scores: dict[str, OracleScores], correct: np.ndarray,
                   confidence: float) -> list[dict[str, Any]]:
    """Per pseudo-oracle: AUROC (with CI) of its suspicion for the model's failures, and its
    online accuracy estimate's error."""
    rows = []
    failed = ~correct
    truth = float(correct.mean())
    for name, s in scores.items():
        auroc = evaluation.auroc_with_ci(s.suspicion, failed, confidence)
        online = None if s.p_correct is None else float(s.p_correct.mean())
        rows.append({
            "oracle": name, "auroc": auroc["auroc"], "auroc_ci_low": auroc["ci_low"],
            "auroc_ci_high": auroc["ci_high"], "online_estimate": online,
            "online_error": None if online is None else online - truth,
        })
    return rows
