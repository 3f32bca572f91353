r"""Activation clipping: values outside the profiled bounds are set to 0 (not clamped).

Hoang, Hanif, Shafique, "FT-ClipAct: Resilience Analysis of Deep Neural Networks and Improving
their Fault Tolerance using Clipped Activation", DATE 2020: an out-of-range activation carries
no trustworthy information, so it is dropped rather than saturated; NaN / Inf are dropped too:

.. math:: y' = \begin{cases} y & \text{if } l \le y \le h \\ 0 & \text{otherwise} \end{cases}

with ``[l, h]`` the profiled bounds widened by ``slack · (h − l)`` on each side.
"""

from __future__ import annotations

import torch

from faultlab.workers.faults.mitigations.base import MITIGATIONS, Mitigation


@MITIGATIONS.register("clipping", citation="Hoang et al., DATE 2020: y' = y if l <= y <= h else 0")
class Clipping(Mitigation):
    """Zeroes values outside the profiled bounds (and non-finite ones)."""

    def guard(self, value: torch.Tensor, low: float, high: float) -> torch.Tensor:
        bad = (value < low) | (value > high) | ~torch.isfinite(value)
        return torch.where(bad, torch.zeros_like(value), value)
