"""Many parameter faults in one forward pass (for GPUs): one model copy per fault, batched.

A GPU runs one small forward far below its throughput; K faulty variants of one layer's
weight fit in one batched pass instead. The faulted parameter is stacked K times (each copy
carrying one trial's faults, applied to the stored bits exactly like :class:`Injector` does),
the faulted layer runs once per copy (``torch.func.functional_call``, the model untouched),
and its K outputs are folded into the batch dimension, so every layer after it runs once on
K × B samples from cached golden inputs (suffix re-execution). A layer called more than once
per forward falls back to ``torch.func.vmap`` over the whole suffix.
The model itself is never modified.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn
from torch.func import functional_call, vmap

from faultlab.workers.faults.formats import raw_view
from faultlab.workers.faults.inject import element_format
from faultlab.workers.faults.models import FaultModel
from faultlab.workers.faults.sites import SiteInfo
from faultlab.workers.faults.suffix import SuffixRunner


def stacked_faulty(
    tensor: torch.Tensor, site: SiteInfo, trials: list[list[dict[str, Any]]], model: FaultModel
) -> torch.Tensor:
    """``len(trials)`` copies of ``tensor``, copy ``k`` carrying the faults of ``trials[k]``."""
    base = tensor.detach()
    stacked = base.unsqueeze(0).repeat(len(trials), *([1] * base.dim())).contiguous()
    raw = raw_view(stacked).view(len(trials), -1)
    fmt = element_format(site)
    for k, faults in enumerate(trials):
        for f in faults:
            i = int(f["index"])
            raw[k, i] = model.apply_tensor(raw[k, i], f, fmt)
    return stacked


class BatchedRunner:
    """Runs K single-layer parameter-fault trials of one model per forward pass."""

    def __init__(self, model: nn.Module, inputs: tuple[Any, ...], suffix: bool = True) -> None:
        self.model = model
        self.inputs = inputs
        self.suffix = SuffixRunner.try_build(model) if suffix else None
        if self.suffix is not None:
            self.suffix.cache_golden([inputs])

    def run(
        self, site: SiteInfo, trials: list[list[dict[str, Any]]], model: FaultModel
    ) -> torch.Tensor:
        """Outputs of every trial, stacked: ``[len(trials), *output shape]``."""
        name = f"{site.module}.{site.tensor}" if site.module else site.tensor
        weights = stacked_faulty(self.model.get_parameter(name), site, trials, model)
        after = self.suffix.after(site.module) if self.suffix is not None else None
        if after is not None and self.suffix is not None:
            return self._folded(self.suffix, site, weights, *after)
        program = self.suffix.program(site.module, site.tensor) if self.suffix else None
        if program is not None and self.suffix is not None:
            module: nn.Module = program.module
            env = self.suffix.env[0]
            args = tuple(env[b] for b in program.boundary)
        else:
            module, args = self.model, self.inputs

        def one(weight: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(module, {name: weight}, args)
            return out

        with torch.no_grad():
            result: torch.Tensor = vmap(one)(weights)
            return result

    def _folded(self, suffix: SuffixRunner, site: SiteInfo, weights: torch.Tensor,
                call: fx.Node, after: Any) -> torch.Tensor:
        """Only the faulted layer runs K times; its K outputs are folded into the batch
        dimension and everything after it runs once on K × B samples."""
        env = suffix.env[0]
        args = fx.map_arg(call.args, lambda n: env[n.name])
        kwargs = fx.map_arg(call.kwargs, lambda n: env[n.name])
        layer = self.model.get_submodule(site.module)
        k = weights.shape[0]
        with torch.no_grad():
            # The faulted layer itself runs once per variant, with the very kernel a single
            # faulty forward uses: a flipped exponent bit makes huge values, and a batched
            # (grouped) kernel could overflow to Inf where the unbatched one does not.
            faulty = torch.stack([functional_call(layer, {site.tensor: w}, args, kwargs)
                                  for w in weights])  # [K, B, ...]
            batch = faulty.shape[1]
            folded = faulty.reshape(k * batch, *faulty.shape[2:])
            inputs = []
            nodes = {n.name: n for n in suffix.nodes}
            for b in after.boundary:
                value = env[b]
                if b == call.name:
                    value = folded
                elif (nodes[b].op != "get_attr" and isinstance(value, torch.Tensor)
                      and value.dim() > 0 and value.shape[0] == batch):
                    value = value.repeat(k, *([1] * (value.dim() - 1)))
                inputs.append(value)
            out: torch.Tensor = after.module(*inputs)
            return out.reshape(k, batch, *out.shape[1:])
