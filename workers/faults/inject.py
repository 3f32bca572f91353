"""Applying one trial's faults to a live model, and undoing them exactly.

Parameters are changed in place through an integer view of their storage (no deepcopy, no
arithmetic); the old bit patterns are kept and written back on exit, in reverse order so
repeated hits on one element restore too. Values computed during the forward pass
(activations, node embeddings, PyG messages / aggregations / edge weights) are faulted by
hooks that count calls within one forward, so a module called twice is addressed by call
index, never by the order hooks fire across modules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from faultlab.workers.faults.formats import raw_view
from faultlab.workers.faults.models import ElementFormat, FaultModel
from faultlab.workers.faults.sites import SiteInfo, first_tensor, quantized_weight


def element_format(site: SiteInfo) -> ElementFormat:
    return ElementFormat(site.width, site.floating, site.torch_dtype, site.zero_pattern)


def _fault_tensor(
    value: torch.Tensor, faults: list[dict[str, Any]], site: SiteInfo, model: FaultModel,
    per_sample: bool, offset: int = 0,
) -> torch.Tensor:
    """A faulted copy of ``value`` (the module's own output is never written to).

    Per sample, a fault with ``indices`` (``activation_position: per_input``) hits input
    ``offset + r`` of the evaluation set at ``indices[offset + r]``: ``offset`` is where this
    chunk of inputs starts."""
    out = value.detach().clone().contiguous()
    raw = raw_view(out)
    fmt = element_format(site)
    if per_sample and out.dim() > 0:
        raw = raw.view(out.shape[0], -1)
        rows = torch.arange(raw.shape[0], device=raw.device)
        for f in faults:
            positions = f.get("indices")
            if positions is None:
                i = int(f["index"])
                raw[:, i] = model.apply_tensor(raw[:, i], f, fmt).to(raw.device)
                continue
            if len(positions) < offset + raw.shape[0]:
                raise ValueError(f"fault at {site.name} records {len(positions)} positions, "
                                 f"the evaluation set has more inputs")
            cols = torch.as_tensor(positions[offset:offset + raw.shape[0]], device=raw.device)
            raw[rows, cols] = model.apply_tensor(raw[rows, cols], f, fmt).to(raw.device)
    else:
        for f in faults:
            i = int(f["index"])
            raw[i] = model.apply_tensor(raw[i], f, fmt)
    return out


def _replace_first(out: Any, new: torch.Tensor) -> Any:
    if isinstance(out, torch.Tensor):
        return new
    items = list(out)
    for k, item in enumerate(items):
        if isinstance(item, torch.Tensor):
            items[k] = new
            break
    return type(out)(items) if isinstance(out, tuple) else items


class Injector:
    """Context manager: the model carries the trial's faults inside the ``with`` block."""

    def __init__(
        self,
        model: nn.Module,
        faults: list[dict[str, Any]],
        sites: dict[str, SiteInfo],
        fault_model: FaultModel,
        per_sample: bool,
    ) -> None:
        self.model = model
        self.fault_model = fault_model
        self.per_sample = per_sample
        self.sites = sites
        self.by_site: dict[str, list[dict[str, Any]]] = {}
        for f in faults:
            self.by_site.setdefault(f["site"], []).append(f)
        self.calls: dict[str, int] = {}
        self.offset = 0
        """Index of the first input of the chunk being run (per-input activation faults)."""
        self._undo: list[Callable[[], None]] = []
        self._handles: list[Any] = []

    def reset_calls(self, offset: int = 0) -> None:
        """Starts a new forward pass (call indices count from 0 again) on the chunk of inputs
        that starts at input ``offset``."""
        self.calls.clear()
        self.offset = offset

    def faulted_edge_index(self, edge_index: torch.Tensor) -> torch.Tensor:
        """``edge_index`` with the trial's ``edge_index`` faults (a copy; the input is kept)."""
        faults = self.by_site.get("edge_index")
        if not faults:
            return edge_index
        return _fault_tensor(edge_index, faults, self.sites["edge_index"], self.fault_model, False)

    def __enter__(self) -> Injector:
        try:
            for name, faults in self.by_site.items():
                site = self.sites[name]
                if site.target in ("weight", "bias"):
                    self._fault_parameter(site, faults)
                elif site.target != "edge_index":
                    self._hook(site, faults)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        while self._undo:
            self._undo.pop()()

    # -- parameters, in place -------------------------------------------------------------
    def _fault_parameter(self, site: SiteInfo, faults: list[dict[str, Any]]) -> None:
        module = self.model.get_submodule(site.module)
        qw = quantized_weight(module) if site.tensor == "weight" else None
        if qw is not None:
            self._fault_quantized(module, qw, site, faults)
            return
        tensor = getattr(module, site.tensor)
        raw = raw_view(tensor.data)
        fmt = element_format(site)
        for f in faults:
            i = int(f["index"])
            old = raw[i].clone()
            raw[i] = self.fault_model.apply_tensor(old, f, fmt)
            self._undo.append(functools.partial(raw.__setitem__, i, old))

    def _fault_quantized(
        self, module: nn.Module, qw: torch.Tensor, site: SiteInfo, faults: list[dict[str, Any]]
    ) -> None:
        bias_of: Any = getattr(module, "bias", None)
        bias = bias_of() if callable(bias_of) else None
        stored = qw.int_repr().contiguous().clone()
        raw = raw_view(stored)
        fmt = element_format(site)
        for f in faults:
            i = int(f["index"])
            raw[i] = self.fault_model.apply_tensor(raw[i], f, fmt)
        if qw.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            new = torch._make_per_channel_quantized_tensor(
                stored, qw.q_per_channel_scales(), qw.q_per_channel_zero_points(),
                qw.q_per_channel_axis(),
            )
        else:
            new = torch._make_per_tensor_quantized_tensor(stored, qw.q_scale(), qw.q_zero_point())
        module.set_weight_bias(new, bias)  # type: ignore[operator]
        self._undo.append(lambda: module.set_weight_bias(qw, bias))  # type: ignore[operator]

    # -- values of the forward pass, by hooks ---------------------------------------------
    def _counted(self, key: str, call: int | None) -> bool:
        k = self.calls.get(key, 0)
        self.calls[key] = k + 1
        return call is None or k == call

    def _hook(self, site: SiteInfo, faults: list[dict[str, Any]]) -> None:
        module: Any = self.model.get_submodule(site.module)
        fm = self.fault_model
        key = site.name.split("#")[0]
        if site.target in ("activation", "embedding"):
            per_sample = self.per_sample

            def out_hook(mod: nn.Module, args: Any, out: Any) -> Any:
                if not self._counted(key, site.call):
                    return None
                t = first_tensor(out)
                if t is None:
                    return None
                return _replace_first(out, _fault_tensor(t, faults, site, fm, per_sample,
                                                         self.offset))

            # prepend: the fault happens inside the module, before any checker hook sees it
            self._handles.append(module.register_forward_hook(out_hook, prepend=True))
        elif site.target in ("message", "aggregation"):

            def mp_hook(mod: nn.Module, inputs: Any, out: torch.Tensor) -> Any:
                if not self._counted(key, site.call):
                    return None
                return _fault_tensor(out, faults, site, fm, False)

            register = (module.register_message_forward_hook if site.target == "message"
                        else module.register_aggregate_forward_hook)
            self._handles.append(register(mp_hook))
        elif site.target == "edge_weight":

            def ew_hook(mod: nn.Module, inputs: Any) -> Any:
                if not self._counted(key, site.call):
                    return None
                edge_index, size, kwargs = inputs
                ew = kwargs.get("edge_weight")
                if not isinstance(ew, torch.Tensor):
                    return None
                kwargs = dict(kwargs)
                kwargs["edge_weight"] = _fault_tensor(ew, faults, site, fm, False)
                return edge_index, size, kwargs

            self._handles.append(module.register_propagate_forward_pre_hook(ew_hook))
        else:  # pragma: no cover - guarded by the planner
            raise ValueError(f"unknown target {site.target!r}")
