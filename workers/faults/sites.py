"""Fault sites: every place of a model a fault can land, addressed by name, never by hook order.

A site is a qualified module name plus a tensor, and for values produced during the forward
pass the call index within one forward (a module called twice has two sites):

=================  ===============================  ===========================================
target             site name                        tensor
=================  ===============================  ===========================================
weight / bias      ``conv1.weight``                 a parameter, changed in place, restored
activation         ``relu1#0``                      the module's output (forward hook)
embedding          ``convs.1#0``                    a ``MessagePassing`` layer's output
message            ``conv1:message#0``              PyG ``message`` output (message hook)
aggregation        ``conv1:aggregate#0``            PyG ``aggregate`` output (aggregate hook)
edge_weight        ``conv1:edge_weight#0``          the edge weights ``propagate`` receives
edge_index         ``edge_index``                   the graph's stored node ids (an input)
=================  ===============================  ===========================================

An element is addressed by a flat index into the tensor; for image models the activation
index is per sample and the fault hits every sample of the batch at that position, or, with
``faults.activation_position: per_input``, each input at its own recorded position
(``indices``, one per evaluated input).
A container (a ``Sequential``, a block) whose output is its last child's very tensor has no
site of its own: the child's site is that value already (no double counting).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from faultlab.workers.faults.formats import bit_width

#: Targets whose sites are values computed during the forward pass.
DYNAMIC_TARGETS = frozenset({"activation", "embedding", "message", "aggregation", "edge_weight"})


@dataclass(frozen=True)
class SiteInfo:
    """A fault site as planners see it (JSON-able, travels in the campaign's meta)."""

    name: str
    module: str
    target: str
    tensor: str
    call: int | None
    numel: int
    shape: list[int]
    width: int
    floating: bool
    torch_dtype: str
    value_range: list[float]
    zero_pattern: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteInfo:
        return cls(**data)


def is_message_passing(module: nn.Module) -> bool:
    """Whether ``module`` is a PyG ``MessagePassing`` layer. Where PyG was never imported no
    module can be one, and the check does not import it (1.5 s, with ``torch._dynamo``, in a
    process that only ever runs CNNs)."""
    if "torch_geometric" not in sys.modules:
        return False
    try:
        from torch_geometric.nn import MessagePassing
    except ImportError:  # pragma: no cover - torch_geometric is a dependency
        return False
    return isinstance(module, MessagePassing)


def quantized_weight(module: nn.Module) -> torch.Tensor | None:
    """The int8 quantized weight of a ``torch.ao`` quantized module (static or dynamic), if any."""
    weight = getattr(module, "weight", None)
    if callable(weight) and hasattr(module, "set_weight_bias"):
        try:
            w = weight()
        except (RuntimeError, TypeError):
            return None
        if isinstance(w, torch.Tensor) and w.is_quantized and w.dtype == torch.qint8:
            return w
    return None


def _range(t: torch.Tensor) -> list[float]:
    if t.numel() == 0 or not t.is_floating_point():
        return [0.0, 0.0]
    t = t.detach().float()
    finite = t[torch.isfinite(t)]
    if finite.numel() == 0:
        return [0.0, 0.0]
    return [float(finite.min()), float(finite.max())]


def _info(name: str, module: str, target: str, tensor: str, call: int | None,
          value: torch.Tensor, per_sample: bool, zero_pattern: int = 0) -> SiteInfo:
    shape = list(value.shape[1:]) if per_sample else list(value.shape)
    numel = 1
    for s in shape:
        numel *= int(s)
    return SiteInfo(
        name=name, module=module, target=target, tensor=tensor, call=call, numel=numel,
        shape=[int(s) for s in shape], width=bit_width(value.dtype),
        floating=value.is_floating_point(), torch_dtype=str(value.dtype).removeprefix("torch."),
        value_range=_range(value), zero_pattern=zero_pattern,
    )


#: Attention parameters of PyG attention layers, weight sites of their module:
#: ``att_src`` / ``att_dst`` / ``att_edge`` of ``GATConv`` (Veličković et al., ICLR 2018,
#: the vector ``a`` of ``e_ij = LeakyReLU(aᵀ [W h_i ‖ W h_j])``) and ``att`` of ``GATv2Conv``.
ATTENTION_PARAMETERS = ("att_src", "att_dst", "att_edge", "att")


def weight_tensors(module: nn.Module) -> list[str]:
    """Names of the float ``weight``-target tensors a module owns directly: its ``weight``
    (convolution, linear, batch-/layer-norm scale) and, for a PyG attention layer, its
    attention vectors."""
    own = dict(module.named_parameters(recurse=False))
    names = ["weight"] if "weight" in own else []
    if is_message_passing(module):
        names += [n for n in ATTENTION_PARAMETERS if n in own]
    return [n for n in names if own[n].is_floating_point()]


def parameter_sites(model: nn.Module, target: str, int8: bool) -> list[SiteInfo]:
    """``weight`` / ``bias`` sites: modules owning that parameter directly (``weight`` also
    covers the attention vectors of PyG attention layers, see :data:`ATTENTION_PARAMETERS`,
    named ``conv1.att_src``).

    Default eligibility for ``weight``: tensors of rank ≥ 2 (convolution, linear, GNN
    projections, GAT attention vectors ``[1, heads, channels]``) — batch-norm and layer-norm
    scales are addressable by name but not in the default set.
    With ``int8`` only the stored integers of quantized modules (or int8 tensors) count.
    """
    sites: list[SiteInfo] = []
    for mname, module in model.named_modules():
        if int8:
            if target == "weight":
                qw = quantized_weight(module)
                if qw is not None:
                    zp = int(qw.q_zero_point()) if qw.qscheme() == torch.per_tensor_affine else 0
                    sites.append(_info(f"{mname}.weight", mname, target, "weight", None,
                                       qw.int_repr(), False, zp & 0xFF))
                    continue
            tensor = getattr(module, target, None)
            if isinstance(tensor, torch.Tensor) and tensor.dtype in (torch.int8, torch.uint8) \
                    and target in dict(module.named_buffers(recurse=False)) | dict(
                        module.named_parameters(recurse=False)):
                sites.append(_info(f"{mname}.{target}", mname, target, target, None, tensor, False))
            continue
        own = dict(module.named_parameters(recurse=False))
        tensors = weight_tensors(module) if target == "weight" else [target]
        for tensor in tensors:
            param = own.get(tensor)
            if param is None or not param.is_floating_point():
                continue
            sites.append(_info(f"{mname}.{tensor}", mname, target, tensor, None, param.data,
                               False))
    return sites


def eligible_by_default(site: SiteInfo) -> bool:
    """Sites a campaign covers when ``faults.layers`` is empty."""
    if site.target == "weight":
        return len(site.shape) >= 2 or not site.floating
    return True


def parameter_names(model: nn.Module, target: str) -> list[str]:
    """Every module owning a float ``target`` parameter (valid names for ``faults.layers``)."""
    names = []
    for m, mod in model.named_modules():
        if target == "weight":
            tensors = weight_tensors(mod)
            names += [m] * bool(tensors or quantized_weight(mod) is not None)
            names += [f"{m}.{t}" for t in tensors if t != "weight"]
        elif target in dict(mod.named_parameters(recurse=False)):
            names.append(m)
    return names


class _Recorder:
    """Hooks that record, during one forward, the shapes of every dynamic site."""

    def __init__(self, model: nn.Module, target: str, per_sample: bool) -> None:
        self.sites: list[SiteInfo] = []
        self.outputs: list[torch.Tensor] = []
        """Outputs recorded so far (kept alive, so identity checks are sound)."""
        self.calls: dict[str, int] = {}
        self.handles: list[Any] = []
        self.per_sample = per_sample
        for mname, module in model.named_modules():
            if mname == "":
                continue
            mp = is_message_passing(module)
            if target == "activation" or (target == "embedding" and mp):
                self.handles.append(module.register_forward_hook(self._out(mname, target)))
            elif mp and target == "message":
                self.handles.append(
                    module.register_message_forward_hook(self._mp(mname, "message"))
                )
            elif mp and target == "aggregation":
                self.handles.append(
                    module.register_aggregate_forward_hook(self._mp(mname, "aggregate"))
                )
            elif mp and target == "edge_weight":
                self.handles.append(module.register_propagate_forward_pre_hook(self._ew(mname)))

    def _next(self, key: str) -> int:
        k = self.calls.get(key, 0)
        self.calls[key] = k + 1
        return k

    def _out(self, mname: str, target: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            call = self._next(mname)
            t = first_tensor(out)
            if t is None:
                return
            container = next(module.children(), None) is not None
            if container and any(t is seen for seen in self.outputs):
                return  # a container returning its last child's output: that child's site
            self.outputs.append(t)
            if t.numel() > 0 and t.dtype in _ADDRESSABLE:
                self.sites.append(_info(f"{mname}#{call}", mname, target, "output", call, t,
                                        self.per_sample))
        return hook

    def _mp(self, mname: str, what: str) -> Any:
        target = "message" if what == "message" else "aggregation"

        def hook(module: nn.Module, inputs: Any, out: Any) -> None:
            key = f"{mname}:{what}"
            call = self._next(key)
            if isinstance(out, torch.Tensor) and out.numel() > 0:
                self.sites.append(_info(f"{key}#{call}", mname, target, what, call, out, False))
        return hook

    def _ew(self, mname: str) -> Any:
        def hook(module: nn.Module, inputs: Any) -> None:
            key = f"{mname}:edge_weight"
            call = self._next(key)
            kwargs = inputs[-1]
            ew = kwargs.get("edge_weight") if isinstance(kwargs, dict) else None
            if isinstance(ew, torch.Tensor) and ew.is_floating_point() and ew.numel() > 0:
                self.sites.append(_info(f"{key}#{call}", mname, "edge_weight", "edge_weight",
                                        call, ew, False))
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


_ADDRESSABLE = (torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.uint8)


def first_tensor(out: Any) -> torch.Tensor | None:
    """The tensor of a module output (the first one of a tuple/list)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    return None


def dynamic_sites(model: nn.Module, target: str, run: Any, per_sample: bool) -> list[SiteInfo]:
    """Sites of values computed in the forward pass; ``run()`` performs one forward."""
    rec = _Recorder(model, target, per_sample)
    try:
        with torch.no_grad():
            run()
    finally:
        rec.remove()
    return rec.sites


def edge_index_site(edge_index: torch.Tensor) -> SiteInfo:
    return _info("edge_index", "", "edge_index", "edge_index", None, edge_index, False)
