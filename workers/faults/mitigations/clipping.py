"""Activation clipping: values outside the profiled bounds are set to 0 (not clamped).

Hoang, Hanif, Shafique, "FT-ClipAct: Resilience Analysis of Deep Neural Networks and Improving
their Fault Tolerance using Clipped Activation", DATE 2020: an out-of-range activation carries
no trustworthy information, so it is dropped rather than saturated; NaN / Inf are dropped too.
"""

from __future__ import annotations

import torch

from faultlab.workers.faults.mitigations.base import Mitigation


class Clipping(Mitigation):
    name = "clipping"

    def guard(self, value: torch.Tensor, low: float, high: float) -> torch.Tensor:
        bad = (value < low) | (value > high) | ~torch.isfinite(value)
        return torch.where(bad, torch.zeros_like(value), value)
