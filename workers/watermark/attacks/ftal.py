"""FTAL (Adi et al., USENIX Security 2018): fine-tunes all layers on the attacker's data
(strength = epochs). The four variants share :mod:`._finetune`."""

from __future__ import annotations

from torch import nn

from faultlab.workers.watermark.attacks._finetune import CITATION, FineTuneParams, fine_tune
from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked


@ATTACKS.register("ftal", params=FineTuneParams, citation=CITATION)
def ftal(model: nn.Module, strength: float, params: FineTuneParams, ctx: AttackContext) -> Attacked:
    """FTAL: fine-tunes all layers for ``strength`` epochs."""
    return fine_tune(model, strength, params, ctx, all_layers=True, reinitialise=False)
