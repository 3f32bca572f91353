"""Channel re-execution: a fault in one filter of a layer recomputes that filter only.

A weight fault at ``w[o, c, kh, kw]`` of a convolution (``w[o, j]`` of a linear layer), or a
bias fault at ``b[o]``, changes output channel ``o`` of that layer and nothing else of it: the
layer's output is ``y_o = Σ_{c,kh,kw} w[o, c, kh, kw] · x[c, ·+kh, ·+kw] + b[o]`` and no other
channel reads ``w[o]`` or ``b[o]``. So a trial recomputes only that channel on the layer's
cached fault-free input — one filter, ``1 / C_out`` of the layer's work (``1 / C_out`` per
group for a grouped convolution) — writes it into a copy of the layer's cached golden output
and runs only what follows the layer (:meth:`SuffixRunner.after`). FIELD.md's floor for one
weight fault, "the forward pass of the layers *after* the faulted one", then no longer pays
the faulted layer itself. Where the recomputed channel equals the golden one bit for bit, the
fault is masked at the layer (a weight whose inputs are all zero, say) and the golden output
is the trial's output: nothing downstream runs.

Where one filter is not at least twice as fast as the whole layer (small shapes, where a
kernel's fixed cost dominates: ``resnet_small`` on 8 × 8 digits), the layer takes the ordinary
suffix path; this is timed once per layer on its cached input.

Exact or not used: a one-filter kernel need not add in the full kernel's order, so for each
(layer, channel, input chunk) the one-filter output of the *clean* weights is first checked to
reproduce the golden channel bit for bit (once, then cached); a layer whose check fails once
(a CPU ``Linear``: its GEMM blocks rows differently) is never taken this way again. The path
is also skipped when the faulted layer has hooks (a mitigation guarding its output, an
activation fault), so what runs is what the full forward would compute.
"""

from __future__ import annotations

import timeit
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.modules import module as module_globals

from faultlab.workers.faults.formats import same_bits
from faultlab.workers.faults.sites import SiteInfo
from faultlab.workers.faults.suffix import SuffixRunner

#: A trial touching more output channels than this takes the ordinary suffix path.
MAX_CHANNELS = 4

#: Used where one filter takes at most this fraction of the layer's time (measured per layer).
FASTER = 0.5

_CONV: dict[type, Any] = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


def _hooked(layer: nn.Module) -> bool:
    return bool(layer._forward_hooks or layer._forward_pre_hooks
                or module_globals._global_forward_hooks
                or module_globals._global_forward_pre_hooks)


class ChannelRunner:
    """Channel re-execution for the weight and bias faults of one workload's traced model."""

    def __init__(self, suffix: SuffixRunner, model: nn.Module) -> None:
        self.suffix = suffix
        self.model = model
        self._checked: dict[tuple[str, int, int], bool] = {}
        self._inexact: set[str] = set()
        """Layers not taken this way: not bit-exact, or not faster."""
        self._faster: dict[str, bool] = {}
        self.masked = 0
        """Chunks whose recomputed channels all equalled golden (nothing downstream ran)."""
        self._after: dict[str, tuple[str, str, Any] | None] = {}
        """module -> (its call's node, that call's input node, the program after it)."""

    def channels(self, site: SiteInfo, faults: list[dict[str, Any]]) -> list[int] | None:
        """The output channels the faults touch, or None where this path does not apply."""
        if site.target not in ("weight", "bias") or site.module in self._inexact:
            return None
        layer = self.model.get_submodule(site.module)
        if type(layer) not in _CONV and type(layer) is not nn.Linear:
            return None
        if getattr(layer, "padding_mode", "zeros") != "zeros" or any(
                "indices" in f for f in faults):
            return None
        tensor = getattr(layer, site.tensor)
        per_channel = tensor.numel() // tensor.shape[0]
        chans = sorted({int(f["index"]) // per_channel for f in faults})
        if len(chans) > MAX_CHANNELS or self._call(site.module) is None:
            return None
        return chans

    def _call(self, module: str) -> tuple[str, str, Any] | None:
        if module not in self._after:
            after = self.suffix.after(module)
            self._after[module] = None
            if after is not None:
                call, program = after
                arg = call.args[0] if len(call.args) == 1 and not call.kwargs else None
                if isinstance(arg, fx.Node):
                    self._after[module] = (call.name, arg.name, program)
        return self._after[module]

    def verify(self, site: SiteInfo, chans: list[int]) -> bool:
        """Whether the one-filter kernel reproduces the golden channels ``chans`` on every
        chunk (run with the clean weights, before the fault is applied; cached)."""
        layer = self.model.get_submodule(site.module)
        after = self._call(site.module)
        if after is None:
            return False
        call, arg, _ = after
        if site.module not in self._faster:
            self._faster[site.module] = self._time(layer, self.suffix.env[0][arg])
            if not self._faster[site.module]:
                self._inexact.add(site.module)
                return False
        for chunk, env in enumerate(self.suffix.env):
            for o in chans:
                key = (site.module, o, chunk)
                if key not in self._checked:
                    with torch.no_grad():
                        ok = same_bits(self._filter(layer, env[arg], o),
                                        _channel_of(layer, env[call], o))
                    self._checked[key] = ok
                    if not ok:
                        self._inexact.add(site.module)
                if not self._checked[key]:
                    return False
        return True

    def usable(self, site: SiteInfo) -> bool:
        """Whether the faulted layer runs without hooks now (inside the trial's context)."""
        return not _hooked(self.model.get_submodule(site.module))

    def run(self, site: SiteInfo, chans: list[int], chunk: int) -> torch.Tensor:
        """The output of input chunk ``chunk`` with the (already applied) fault."""
        layer = self.model.get_submodule(site.module)
        call, arg, program = self._call(site.module)  # type: ignore[misc]
        env = self.suffix.env[chunk]
        golden = env[call]
        with torch.no_grad():
            out: torch.Tensor | None = None
            for o in chans:
                fresh = self._filter(layer, env[arg], o)
                if same_bits(fresh, _channel_of(layer, golden, o)):
                    continue
                if out is None:
                    out = golden.clone()
                _set_channel(layer, out, o, fresh)
            if out is None:  # masked at the layer: downstream sees the golden value
                self.masked += 1
                return self.suffix.outputs[chunk].clone()
            return program.module(*[out if b == call else env[b] for b in program.boundary])

    def _time(self, layer: nn.Module, x: torch.Tensor) -> bool:
        """Whether one filter runs in at most :data:`FASTER` of the whole layer's time here
        (best of three each, clean weights): on small shapes a kernel's fixed cost dominates
        and the copy and checks of this path would cost more than they save. On a GPU each
        run waits for its kernels (else only their launches would be timed)."""
        sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

        def best(run: Any) -> float:
            return min(timeit.repeat(lambda: (run(), sync()), repeat=3, number=1))

        with torch.no_grad():
            whole = best(lambda: layer(x))
            one = best(lambda: self._filter(layer, x, 0))
        return one <= FASTER * whole

    @staticmethod
    def _filter(layer: Any, x: torch.Tensor, o: int) -> torch.Tensor:
        """Output channel ``o`` of ``layer`` on input ``x`` (its current weights)."""
        weight = layer.weight[o:o + 1]
        bias = layer.bias[o:o + 1] if layer.bias is not None else None
        if type(layer) is nn.Linear:
            return F.linear(x, weight, bias)
        groups = int(layer.groups)
        if groups > 1:
            per_in = int(layer.in_channels) // groups
            group = o // (int(layer.out_channels) // groups)
            x = x[:, group * per_in:(group + 1) * per_in]
        conv: Any = _CONV[type(layer)]
        return conv(x, weight, bias, layer.stride, layer.padding, layer.dilation, 1)


def _channel_of(layer: nn.Module, out: torch.Tensor, o: int) -> torch.Tensor:
    return out[..., o:o + 1] if type(layer) is nn.Linear else out[:, o:o + 1]


def _set_channel(layer: nn.Module, out: torch.Tensor, o: int, value: torch.Tensor) -> None:
    if type(layer) is nn.Linear:
        out[..., o:o + 1] = value
    else:
        out[:, o:o + 1] = value
