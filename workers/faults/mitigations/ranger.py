"""Ranger: range restriction of activations (clamp to bounds profiled on fault-free data).

Chen, Li, Pattabiraman, "A Low-cost Fault Corrector for Deep Neural Networks through Range
Restriction", DSN 2021. Values above the profiled maximum (or below the minimum) — the
signature of an exponent-bit flip — are clamped to the bound; NaN becomes the lower bound.
"""

from __future__ import annotations

import torch

from faultlab.workers.faults.mitigations.base import Mitigation


class Ranger(Mitigation):
    name = "ranger"

    def guard(self, value: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.nan_to_num(value, nan=low, posinf=high, neginf=low).clamp(low, high)
