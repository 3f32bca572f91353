"""Pseudo-oracles: label-free verdicts on whether the model's prediction of an input is
right, one file each (registered by the file's name), each citing its source."""

from faultlab.workers.sampling.oracles.base import (
    ScoringContext,
    oracle_registry,
    register_oracle,
    representation,
    score_oracle,
)

__all__ = ["ScoringContext", "oracle_registry", "register_oracle", "representation", "score_oracle"]
