r"""Ranger: range restriction of activations (clamp to bounds profiled on fault-free data).

Chen, Li, Pattabiraman, "A Low-cost Fault Corrector for Deep Neural Networks through Range
Restriction", DSN 2021. Values above the profiled maximum (or below the minimum) — the
signature of an exponent-bit flip — are clamped to the bound; NaN becomes the lower bound:

.. math:: y' = \min(\max(y, l), h)

with ``[l, h]`` the profiled bounds widened by ``slack · (h − l)`` on each side.
"""

from __future__ import annotations

import torch

from faultlab.workers.faults.mitigations.base import MITIGATIONS, Mitigation


@MITIGATIONS.register("ranger", citation="Chen et al., DSN 2021: y' = min(max(y, l), h)")
class Ranger(Mitigation):
    """Clamps values to the profiled bounds; NaN becomes the lower bound."""

    def guard(self, value: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.nan_to_num(value, nan=low, posinf=high, neginf=low).clamp(low, high)
