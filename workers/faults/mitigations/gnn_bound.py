r"""GNN aggregation bound: range-restrict the aggregated messages of every message-passing layer.

The GNN resilience study faultlab grew from (seed paper 2: a large-scale empirical study of
GNN resilience to hardware faults, which explores a low-cost mitigation for GNNs) motivates a
GNN-specific guard; faultlab's is Ranger's idea (Chen et al., DSN 2021) moved to where a GNN
concentrates error: a corrupted weight, feature or message is summed into every neighbour's
aggregate, so the aggregate of each ``MessagePassing`` layer (PyG ``aggregate`` hook) is clamped
to its fault-free range and non-finite values are zeroed, before the layer's update step:

.. math:: a_i' = \min(\max(a_i, l), h), \quad a_i = \bigoplus_{j \in N(i)} m_{j \to i}

with ``[l, h]`` the aggregate's profiled bounds (NaN → 0, ±Inf → the bound).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from faultlab.workers.faults.mitigations.base import MITIGATIONS, Mitigation
from faultlab.workers.faults.sites import is_message_passing


@MITIGATIONS.register(
    "gnn_bound",
    citation="Chen et al., DSN 2021 (Ranger) on MessagePassing aggregates: a' = min(max(a, l), h)",
)
class GnnBound(Mitigation):
    """Clamps each MessagePassing layer's aggregated messages to their profiled bounds."""

    def default_layers(self, model: nn.Module) -> list[str]:
        return [n for n, m in model.named_modules() if n and is_message_passing(m)]

    def register(self, module: nn.Module, hook: Callable[..., Any]) -> Any:
        if not is_message_passing(module):
            raise ValueError("gnn_bound protects MessagePassing layers only")
        return module.register_aggregate_forward_hook(hook)  # type: ignore[operator]

    def guard(self, value: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.nan_to_num(value, nan=0.0, posinf=high, neginf=low).clamp(low, high)
