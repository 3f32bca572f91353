"""Batched faults in PyG models: K trials in one forward over a K-fold disjoint union graph.

PyG batches graphs by their disjoint union (node ids of copy ``k`` offset by ``k · N``), and
message passing never crosses copies. K trials of one site then run in one forward of the
model on ``K · N`` nodes, with hooks that make copy ``k`` carry trial ``k``'s faults:

* a weight or bias of a module whose inputs are node rows (the ``Linear`` inside ``GCNConv``,
  ``SAGEConv``, ``GATConv``, GIN's MLP): the module runs once per copy on that copy's rows with
  that trial's parameter (``torch.func.functional_call``; the model is never modified);
* an activation, embedding or aggregation (a node-row output): copy ``k``'s rows get trial
  ``k``'s faults, applied like the sequential :class:`~faultlab.workers.faults.inject.Injector`.

Messages, edge weights and ``edge_index`` are not node rows (self loops are appended after
every copy's edges), so those trials run one by one. A site runs batched only where two clean
copies reproduce the golden output bit for bit (checked once per site: scatter order, kernels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.func import functional_call

from faultlab.workers.faults.batched import stacked_faulty
from faultlab.workers.faults.inject import _fault_tensor, _replace_first
from faultlab.workers.faults.models import FaultModel
from faultlab.workers.faults.sites import SiteInfo, first_tensor

if TYPE_CHECKING:
    from faultlab.workers.faults.workload import Workload

#: Graph targets :func:`graph_outputs` batches.
GRAPH_TARGETS = frozenset({"weight", "bias", "activation", "embedding", "aggregation"})


class _NotNodeRows(Exception):
    """The hooked module saw or made a tensor whose rows are not the union's nodes."""


def union_args(args: tuple[Any, ...], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, edge_index)`` of the disjoint union of ``k`` copies of the graph ``args``."""
    x, edge_index = args
    n = x.shape[0]
    xs = x.repeat(k, *([1] * (x.dim() - 1)))
    offsets = torch.arange(k, device=edge_index.device, dtype=edge_index.dtype) * n
    edges = (edge_index.unsqueeze(0) + offsets.view(k, 1, 1)).permute(1, 0, 2).reshape(2, -1)
    return xs, edges


class _UnionHooks:
    """Hooks on one site making copy ``k`` of a ``K``-fold union carry ``trials[k]``."""

    def __init__(self, model: nn.Module, site: SiteInfo, trials: list[list[dict[str, Any]]],
                 fault_model: FaultModel, n: int) -> None:
        self.model, self.site, self.trials, self.fm, self.n = model, site, trials, fault_model, n
        self.k = len(trials)
        self.calls = 0
        self.busy = False
        self.handles: list[Any] = []
        self.footprint = 0

    def __enter__(self) -> _UnionHooks:
        module: Any = self.model.get_submodule(self.site.module)
        if self.site.target in ("weight", "bias"):
            name = self.site.tensor
            self.weights = stacked_faulty(module.get_parameter(name), self.site, self.trials,
                                          self.fm)
            self.handles.append(module.register_forward_hook(self._param, with_kwargs=True))
        elif self.site.target == "aggregation":
            self.handles.append(module.register_aggregate_forward_hook(self._value))
        else:
            self.handles.append(module.register_forward_hook(self._value, prepend=True))
        for m in self.model.modules():  # bytes of every module output: K's memory bound
            self.handles.append(m.register_forward_hook(self._count))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def _count(self, module: nn.Module, args: Any, out: Any) -> None:
        t = first_tensor(out)
        if t is not None:
            self.footprint += t.numel() * t.element_size()

    def _rows(self, t: torch.Tensor) -> None:
        if t.dim() == 0 or t.shape[0] != self.k * self.n:
            raise _NotNodeRows(self.site.name)

    def _param(self, module: nn.Module, args: Any, kwargs: Any, out: Any) -> Any:
        if self.busy:
            return None
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not tensors or any(isinstance(v, torch.Tensor) for v in kwargs.values()):
            raise _NotNodeRows(self.site.name)
        for t in tensors:
            self._rows(t)
        n, outs = self.n, []
        self.busy = True
        try:
            for j in range(self.k):
                part = tuple(a[j * n:(j + 1) * n] if isinstance(a, torch.Tensor) else a
                             for a in args)
                outs.append(functional_call(module, {self.site.tensor: self.weights[j]}, part,
                                            kwargs))
        finally:
            self.busy = False
        if not all(isinstance(o, torch.Tensor) for o in outs):
            raise _NotNodeRows(self.site.name)
        return torch.cat(outs)

    def _value(self, module: nn.Module, args: Any, out: Any) -> Any:
        call = self.calls
        self.calls += 1
        if self.site.call is not None and call != self.site.call:
            return None
        t = first_tensor(out)
        if t is None:
            raise _NotNodeRows(self.site.name)
        self._rows(t)
        n = self.n
        parts = [_fault_tensor(t[j * n:(j + 1) * n], faults, self.site, self.fm, False)
                 for j, faults in enumerate(self.trials)]
        return _replace_first(out, torch.cat(parts))


def _run_union(wl: Workload, dtype: str, site: SiteInfo, trials: list[list[dict[str, Any]]],
               fault_model: FaultModel) -> tuple[torch.Tensor, int]:
    """Outputs ``[K, N, classes]`` of the union forward, and its bytes per copy."""
    model = wl.models[dtype]
    (args,) = wl.inputs[dtype]
    n = args[0].shape[0]
    with _UnionHooks(model, site, trials, fault_model, n) as hooks, torch.no_grad():
        out = model(*union_args(args, len(trials)))
    if not isinstance(out, torch.Tensor) or out.shape[0] != len(trials) * n:
        raise _NotNodeRows(site.name)
    return out.reshape(len(trials), n, *out.shape[1:]).float(), hooks.footprint // len(trials)


def _batchable(wl: Workload, dtype: str, site: SiteInfo) -> bool:
    inputs = wl.inputs[dtype]
    return (wl.kind == "graph" and site.target in GRAPH_TARGETS and len(inputs) == 1
            and len(inputs[0]) == 2 and all(isinstance(a, torch.Tensor) for a in inputs[0]))


def graph_exact(wl: Workload, dtype: str, site: SiteInfo) -> bool:
    """Whether the union forward with two clean copies reproduces the golden output bit for
    bit at ``site`` (checked once per site and kept, with the bytes one copy needs)."""
    key = (dtype, site.name)
    if key not in wl._exact:
        exact = False
        if _batchable(wl, dtype, site):
            try:
                outs, footprint = _run_union(wl, dtype, site, [[], []], _clean_model())
                gold = wl.golden[(dtype, "none")].output
                exact = all(torch.equal(o, gold) for o in outs)
                wl.batch_footprint[key] = footprint
            except Exception:  # noqa: BLE001 - any failure of the union forward: sequential
                exact = False
        wl._exact[key] = exact
    return wl._exact[key]


def graph_outputs(wl: Workload, dtype: str, site: SiteInfo, trials: list[list[dict[str, Any]]],
                  fault_model: FaultModel) -> torch.Tensor | None:
    """Unmitigated outputs ``[K, nodes, classes]`` of ``len(trials)`` trials of ``site`` in one
    union forward; None where :func:`graph_exact` says no."""
    if not graph_exact(wl, dtype, site):
        return None
    return _run_union(wl, dtype, site, trials, fault_model)[0]


def _clean_model() -> FaultModel:
    """A fault model for the clean copies (they carry no faults, so it is never applied)."""
    from faultlab.workers.faults.models import FAULT_MODELS

    return FAULT_MODELS.get("bitflip").impl()
