"""The interface of a mitigation: profile bounds on fault-free data, then guard the model.

A mitigation is installed as hooks for the duration of a forward pass (never by editing the
model), so the same model serves the unmitigated and mitigated arms of an A/B on the identical
fault plan. Bounds are per protected module (min and max over all its fault-free values).
Each mitigation is one file of this package, registered in :data:`MITIGATIONS` by the name a
spec uses (``faults.mitigations[].name``); a mitigation is a stateless class.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from faultlab.registry import Registry
from faultlab.workers.faults.sites import first_tensor, is_message_passing

Bounds = dict[str, list[float]]

#: Activation-function modules Ranger-style checks sit behind.
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
               nn.PReLU, nn.Hardtanh)


class Mitigation(abc.ABC):
    """Guards a model's layers with bounds profiled on fault-free data."""

    def default_layers(self, model: nn.Module) -> list[str]:
        """Activation-function modules; models with functional activations (most GNNs) get
        their layers with parameters (convolutions, linear maps, message-passing layers)."""
        acts = [n for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
        if acts:
            return acts
        return [
            n for n, m in model.named_modules()
            if n and (is_message_passing(m) or isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d))
            and not any(is_message_passing(p) for p in _parents(model, n))
        ]

    def profile(self, model: nn.Module, layers: list[str], forward: Callable[[], Any]) -> Bounds:
        """Min / max of each layer's output over one fault-free ``forward()``."""
        bounds: Bounds = {}
        handles = []

        def record(name: str) -> Callable[..., None]:
            def hook(mod: nn.Module, args: Any, out: Any) -> None:
                t = first_tensor(out)
                if t is None or not t.is_floating_point() or t.numel() == 0:
                    return
                lo, hi = float(t.min()), float(t.max())
                old = bounds.get(name)
                bounds[name] = [min(lo, old[0]), max(hi, old[1])] if old else [lo, hi]
            return hook

        for name in layers:
            handles.append(self.register(model.get_submodule(name), record(name)))
        try:
            with torch.no_grad():
                forward()
        finally:
            for h in handles:
                h.remove()
        return bounds

    def register(self, module: nn.Module, hook: Callable[..., Any]) -> Any:
        """Where the guard sits: after the module's forward (``gnn_bound`` overrides)."""
        return module.register_forward_hook(hook)

    @abc.abstractmethod
    def guard(self, value: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """The protected value."""

    @contextmanager
    def install(self, model: nn.Module, bounds: Bounds, slack: float) -> Iterator[None]:
        handles = []

        def make(low: float, high: float) -> Callable[..., Any]:
            def hook(mod: nn.Module, args: Any, out: Any) -> Any:
                if isinstance(out, torch.Tensor) and out.is_floating_point():
                    return self.guard(out, low, high)
                return None
            return hook

        for name, (lo, hi) in bounds.items():
            pad = slack * (hi - lo)
            handles.append(self.register(model.get_submodule(name), make(lo - pad, hi + pad)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()


#: Every mitigation, by the name ``faults.mitigations[].name`` uses.
MITIGATIONS: Registry[type[Mitigation]] = Registry(
    "mitigation", "faultlab.workers.faults.mitigations", "faults.mitigations"
)


def _parents(model: nn.Module, name: str) -> list[nn.Module]:
    parts = name.split(".")
    return [model.get_submodule(".".join(parts[:i])) for i in range(1, len(parts))]
