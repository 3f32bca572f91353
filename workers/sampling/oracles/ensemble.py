"""Deep-ensemble disagreement.

Source: B. Lakshminarayanan, A. Pritzel, C. Blundell, "Simple and scalable predictive
uncertainty estimation using deep ensembles", NeurIPS 2017.

``M = ensemble_members`` extra zoo models of the same architecture are trained on the same
training data with different seeds (``model.options.train_seed`` = the assessed model's seed
+ 1 … + M; each cached by the zoo like any model). With ``ŷ`` the assessed model's
prediction::

    disagreement = (1/M) Σ_m [argmax p_m ≠ ŷ],   p_correct = (1/M) Σ_m p_m(ŷ)
    suspicion    = disagreement + 10⁻³ · (1 − p_correct)

Needs a zoo model (a custom model has no training recipe to re-run).
"""

from __future__ import annotations

import torch

from faultlab.errors import SpecError
from faultlab.workers.sampling.oracles.base import ORACLES, ScoringContext
from faultlab.workers.sampling.samplers.base import OracleScores
from faultlab.workers.zoo import trained_model


@ORACLES.register(
    "ensemble",
    citation="Lakshminarayanan et al., NeurIPS 2017: disagreement = (1/M) Σ_m [argmax p_m ≠ ŷ]",
)
def ensemble_disagreement(ctx: ScoringContext) -> OracleScores:
    """Share of independently trained members that disagree with the model."""
    spec = ctx.model_spec
    if spec.name == "custom" or spec.factory:
        raise SpecError("sampling.oracles", "the ensemble pseudo-oracle needs a zoo model "
                        "(members are retrained with other seeds)")
    base_seed = int(spec.options.get("train_seed", ctx.seed))
    predicted = ctx.predictions
    probs = []
    for m in range(1, ctx.settings.ensemble_members + 1):
        member_spec = spec.model_copy(
            update={"options": {**spec.options, "train_seed": base_seed + m}})
        member, _ = trained_model(member_spec, ctx.train, seed=ctx.seed)
        with torch.no_grad():
            logits = torch.cat([member(ctx.x_pool[i : i + 2048])
                                for i in range(0, len(ctx.x_pool), 2048)])
        probs.append(torch.softmax(logits.double(), 1))
    stacked = torch.stack(probs)
    p_correct = stacked.gather(
        2, predicted[None, :, None].expand(stacked.shape[0], -1, 1)).squeeze(2).mean(0)
    disagreement = (stacked.argmax(2) != predicted[None, :]).double().mean(0)
    return OracleScores(
        suspicion=(disagreement + 1e-3 * (1.0 - p_correct)).numpy(),
        p_correct=p_correct.numpy(),
    )
