"""Softmax margin between the two most probable classes.

Source: T. Scheffer, C. Decomain, S. Wrobel, "Active hidden Markov models for information
extraction", IDA 2001 (margin sampling); as a misprediction score for DNN testing, W. Ma et
al., "Test selection for deep learning systems", *TOSEM* 30 (2021).

``margin = p_(1) − p_(2)`` of the sorted softmax output; ``suspicion = 1 − margin``: inputs
near a decision boundary are the likeliest to be wrong. No probability of correctness.
"""

from __future__ import annotations

import torch

from faultlab.workers.sampling.oracles.base import ORACLES, ScoringContext
from faultlab.workers.sampling.samplers.base import OracleScores


@ORACLES.register("margin", citation="Scheffer et al., IDA 2001: suspicion = 1 − (p_(1) − p_(2))")
def softmax_margin(ctx: ScoringContext) -> OracleScores:
    """``1 − (p_top1 − p_top2)``."""
    probs = torch.softmax(ctx.logits.double(), 1)
    top = probs.topk(min(2, probs.shape[1]), dim=1).values
    margin = top[:, 0] - (top[:, 1] if top.shape[1] > 1 else 0.0)
    return OracleScores(suspicion=(1.0 - margin).numpy())
