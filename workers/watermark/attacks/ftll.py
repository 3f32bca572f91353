"""FTLL (Adi et al., USENIX Security 2018): fine-tunes the last layer on the attacker's data
(strength = epochs). The four variants share :mod:`._finetune`."""

from __future__ import annotations

from torch import nn

from faultlab.workers.watermark.attacks._finetune import CITATION, FineTuneParams, fine_tune
from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked


@ATTACKS.register("ftll", params=FineTuneParams, citation=CITATION)
def ftll(model: nn.Module, strength: float, params: FineTuneParams, ctx: AttackContext) -> Attacked:
    """FTLL: fine-tunes the last layer for ``strength`` epochs."""
    return fine_tune(model, strength, params, ctx, all_layers=False, reinitialise=False)
