"""Predictive entropy of the softmax output.

Source: C. E. Shannon, "A mathematical theory of communication", *Bell Syst. Tech. J.* 27
(1948); used as an uncertainty score for misprediction detection e.g. by Y. Gal, "Uncertainty
in deep learning", PhD thesis, Cambridge 2016, §3.3.1, and by DeepGini-style test
prioritisation (Feng et al., ISSTA 2020).

``suspicion = H(p) = −Σ_c p_c log p_c`` with ``p = softmax(logits)``: high when the
probability mass is spread over classes. No probability of correctness.
"""

from __future__ import annotations

import torch

from faultlab.workers.sampling.oracles.base import ORACLES, ScoringContext
from faultlab.workers.sampling.samplers.base import OracleScores


@ORACLES.register("entropy", citation="Shannon, Bell Syst. Tech. J. 1948: H(p) = −Σ_c p_c log p_c")
def predictive_entropy(ctx: ScoringContext) -> OracleScores:
    """Shannon entropy (nats) of the softmax output."""
    log_p = torch.log_softmax(ctx.logits.double(), 1)
    entropy = -(log_p.exp() * log_p).sum(1)
    return OracleScores(suspicion=entropy.numpy())
