"""Maximum softmax probability (MSP).

Source: D. Hendrycks, K. Gimpel, "A baseline for detecting misclassified and
out-of-distribution examples in neural networks", ICLR 2017.

``p_correct = max_c softmax(logits)_c`` — the model's own probability that its prediction is
right; ``suspicion = 1 − p_correct``. Cheap (no extra forward pass) and usually the strongest
single signal, but over-confident under distribution shift.
"""

from __future__ import annotations

import torch

from faultlab.workers.sampling.oracles.base import ORACLES, ScoringContext
from faultlab.workers.sampling.samplers.base import OracleScores


@ORACLES.register(
    "msp", citation="Hendrycks & Gimpel, ICLR 2017: p_correct = max_c softmax(logits)_c"
)
def max_softmax_probability(ctx: ScoringContext) -> OracleScores:
    """``1 − max softmax`` as suspicion, the max softmax as probability of correctness."""
    msp = torch.softmax(ctx.logits.double(), 1).max(1).values.numpy()
    return OracleScores(suspicion=1.0 - msp, p_correct=msp)
