"""Pseudo-oracles: label-free verdicts on whether the model's prediction of an input is
right, one file each (registered in :data:`ORACLES` by the file's name), each citing its
source."""

from faultlab.workers.sampling.oracles.base import ORACLES, ScoringContext, representation

__all__ = ["ORACLES", "ScoringContext", "representation"]
