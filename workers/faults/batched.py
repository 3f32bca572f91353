"""Many parameter faults in one forward pass (for GPUs): one model copy per fault, batched.

A GPU runs one small forward far below its throughput; K faulty variants of one layer's
weight fit in one batched pass instead. The faulted parameter is stacked K times (each copy
carrying one trial's faults, applied to the stored bits exactly like :class:`Injector` does),
the faulted layer runs once per copy (``torch.func.functional_call``, the model untouched),
and its K outputs are folded into the batch dimension, so every layer after it runs once on
K × B samples from cached golden inputs (suffix re-execution). A layer called more than once
per forward falls back to ``torch.func.vmap`` over the whole suffix.
The model itself is never modified.

In campaigns (:func:`run_batched`), trials that fault one site — a weight or bias tensor of an
image model (here), an activation of one (:mod:`.batched_values`), or a weight, bias,
activation, embedding or aggregation of a PyG model (:mod:`.batched_graph`, a disjoint-union
graph) — are grouped by (workload, format, site, fault model) and run K per forward; K is the
smaller of ``execution.batch_faults`` (64 under ``auto``) and what a quarter of the device's
free memory holds (K copies of the golden activations after the layer). ``auto`` times two
sequential trials against the first batch of each site and keeps the faster; the folded pass
is used only where it is bit-exact with the unbatched one (checked on the golden model), so a
trial's outcome never depends on which trials shared its batch, and replay (sequential) gives
the stored result.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn
from torch.func import functional_call, vmap

from faultlab.workers.faults.formats import raw_view
from faultlab.workers.faults.inject import element_format
from faultlab.workers.faults.models import FAULT_MODELS, FaultModel
from faultlab.workers.faults.sites import SiteInfo
from faultlab.workers.faults.suffix import SuffixRunner

if TYPE_CHECKING:
    from faultlab.workers.faults.workload import Workload


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
        return run_folded(suffix, 0, self.model, site.module, site.tensor, weights, call, after)


def run_folded(suffix: SuffixRunner, chunk: int, model: nn.Module, module_name: str,
               tensor: str, weights: torch.Tensor, call: fx.Node, after: Any) -> torch.Tensor:
    """Outputs ``[K, B, ...]`` of input chunk ``chunk`` with the K variants ``weights`` of
    ``module_name.tensor``: only the faulted layer runs K times; its K outputs are folded
    into the batch dimension and everything after it runs once on K × B samples."""
    args, kwargs = call_inputs(suffix, chunk, call)
    layer = model.get_submodule(module_name)
    with torch.no_grad():
        # The faulted layer itself runs once per variant, with the very kernel a single
        # faulty forward uses: a flipped exponent bit makes huge values, and a batched
        # (grouped) kernel could overflow to Inf where the unbatched one does not.
        faulty = [functional_call(layer, {tensor: w}, args, kwargs) for w in weights]
    return fold_after(suffix, chunk, call, after, faulty)


def call_inputs(suffix: SuffixRunner, chunk: int, call: fx.Node) -> tuple[Any, Any]:
    """The golden (cached) positional and keyword arguments of graph node ``call``."""
    env = suffix.env[chunk]
    return (fx.map_arg(call.args, lambda n: env[n.name]),
            fx.map_arg(call.kwargs, lambda n: env[n.name]))


def fold_after(suffix: SuffixRunner, chunk: int, call: fx.Node, after: Any,
               variants: list[torch.Tensor]) -> torch.Tensor:
    """Outputs ``[K, B, ...]`` of input chunk ``chunk`` when node ``call`` output the K
    values ``variants`` instead of its golden one: they are folded into the batch dimension
    (in the memory layout they came in), the program ``after`` gets its other cached inputs
    repeated K times."""
    env = suffix.env[chunk]
    variant = variants[0]
    faulty = torch.stack(variants)
    k, batch = faulty.shape[0], faulty.shape[1]
    with torch.no_grad():
        folded = _layout_of(faulty.reshape(k * batch, *faulty.shape[2:]), variant)
        inputs = []
        nodes = {n.name: n for n in suffix.nodes}
        for b in after.boundary:
            value = env[b]
            if b == call.name:
                value = folded
            elif (nodes[b].op != "get_attr" and isinstance(value, torch.Tensor)
                  and value.dim() > 0 and value.shape[0] == batch):
                value = _layout_of(value.repeat(k, *([1] * (value.dim() - 1))), value)
            inputs.append(value)
        out: torch.Tensor = after.module(*inputs)
        return out.reshape(k, batch, *out.shape[1:])


def _layout_of(value: torch.Tensor, reference: Any) -> torch.Tensor:
    """``value`` in the memory format of ``reference``: oneDNN convolutions hand out
    channels-last tensors, and a kernel given the other layout rounds differently."""
    if (isinstance(reference, torch.Tensor) and reference.dim() == 4
            and not reference.is_contiguous()
            and reference.is_contiguous(memory_format=torch.channels_last)):
        return value.contiguous(memory_format=torch.channels_last)
    return value


#: Most trials one batched forward carries under ``execution.batch_faults: auto``.
MAX_K = 64
Arm = Callable[[dict[str, Any]], dict[str, Any]]


def batch_key(workloads: dict[str, Workload], trial: dict[str, Any]) -> tuple[str, ...] | None:
    """(workload, dtype, site, fault model) of a trial that can run batched, else None: its
    faults all hit one float site, a weight, bias or activation of an image model, or a
    weight, bias, activation, embedding or aggregation of a PyG model."""
    from faultlab.workers.faults.batched_graph import GRAPH_TARGETS
    from faultlab.workers.faults.batched_values import VALUE_TARGETS

    sites = {f["site"] for f in trial["faults"]}
    wl = workloads[trial["workload"]]
    if len(sites) != 1 or trial["dtype"] == "int8":
        return None
    site = wl.sites[trial["dtype"]][next(iter(sites))]
    allowed = GRAPH_TARGETS if wl.kind == "graph" else {"weight", "bias", *VALUE_TARGETS}
    if site.target not in allowed:
        return None
    return trial["workload"], trial["dtype"], site.name, trial["fault_model"]


Outputs = Callable[[list[list[dict[str, Any]]], FaultModel], "torch.Tensor | None"]


def _strategy(wl: Workload, dtype: str, site: SiteInfo) -> tuple[Callable[[], bool], Outputs]:
    """(whether the batched pass is bit-exact at ``site``, the batched pass itself)."""
    from faultlab.workers.faults.batched_graph import graph_exact, graph_outputs
    from faultlab.workers.faults.batched_values import activation_exact, activation_outputs

    if wl.kind == "graph":
        return (lambda: graph_exact(wl, dtype, site),
                lambda t, fm: graph_outputs(wl, dtype, site, t, fm))
    if site.target in ("weight", "bias"):
        return (lambda: wl.folded_exact(dtype, site),
                lambda t, fm: wl.batched_outputs(dtype, site, t, fm))
    return (lambda: activation_exact(wl, dtype, site),
            lambda t, fm: activation_outputs(wl, dtype, site, t, fm))


def free_bytes(device: torch.device) -> int:
    """Free memory of ``device`` (the CPU: the host's available memory)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def k_limit(wl: Workload, dtype: str, site: SiteInfo, setting: int | str) -> int:
    """K for ``site`` of ``wl`` in ``dtype``: the setting's cap, bounded by a quarter of free
    memory over what one variant needs (a copy of one golden pass's cached activations; for
    a graph, the bytes of every module output of one copy of the union forward)."""
    if wl.kind == "graph":
        footprint = max(1, wl.batch_footprint.get((dtype, site.name), 0))
    else:
        runner = wl.suffix_runner(dtype, "none")
        cached = [v for env in (runner.env if runner else []) for v in env.values()
                  if isinstance(v, torch.Tensor)]
        footprint = max(1, sum(v.numel() * v.element_size() for v in cached))
    device = wl.golden[(dtype, "none")].output.device
    cap = setting if isinstance(setting, int) else MAX_K
    return max(1, min(cap, free_bytes(device) // 4 // footprint))


def run_batched(workloads: dict[str, Workload], trials: list[dict[str, Any]],
                setting: int | str, tolerance: float, sequential: Arm) -> dict[int, dict[str, Any]]:
    """Unmitigated results of the trials of ``trials`` that ran batched (by position); the
    caller runs the rest one by one. ``sequential`` runs one trial's unmitigated arm."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, trial in enumerate(trials):
        key = batch_key(workloads, trial) if setting != "off" else None
        if key is not None:
            groups.setdefault(key, []).append(i)
    done: dict[int, dict[str, Any]] = {}
    for (wl_name, dtype, site_name, fm_name), positions in groups.items():
        if len(positions) > 1:
            done.update(_run_group(workloads[wl_name], dtype, site_name, fm_name,
                                   [(i, trials[i]) for i in positions], setting, tolerance,
                                   sequential))
    return done


def _run_group(wl: Workload, dtype: str, site_name: str, fm_name: str,
               group: list[tuple[int, dict[str, Any]]], setting: int | str, tolerance: float,
               sequential: Arm) -> dict[int, dict[str, Any]]:
    site = wl.sites[dtype][site_name]
    fault_model = FAULT_MODELS.get(fm_name).impl()
    decision = (dtype, site.module if site.target in ("weight", "bias") else site.name)
    exact, batched_outputs = _strategy(wl, dtype, site)
    faster = wl.batch_faster.get(decision) if setting == "auto" else True
    if faster is False or not exact():  # traced & checked before timing
        wl.batch_faster[decision] = False
        return {}
    done: dict[int, dict[str, Any]] = {}
    seq_seconds = 0.0
    if faster is None:  # measure once per layer: two trials alone (the faster), then a batch
        seq_seconds = math.inf
        for i, trial in group[:2]:
            start = time.perf_counter()
            done[i] = sequential(trial)
            seq_seconds = min(seq_seconds, time.perf_counter() - start)
        group = group[2:]
    k = k_limit(wl, dtype, site, setting)
    for pos in range(0, len(group), k):
        chunk = group[pos:pos + k]
        start = time.perf_counter()
        try:
            outs = batched_outputs([t["faults"] for _, t in chunk], fault_model)
        except Exception:  # noqa: BLE001 - e.g. out of memory: these trials run one by one
            outs = None
        if outs is None:
            wl.batch_faster[decision] = False
            return done
        for j, (i, _) in enumerate(chunk):
            result = wl.classify(dtype, "none", functools.partial(outs.__getitem__, j),
                                 tolerance)
            result["batch_faults"] = len(chunk)
            done[i] = result
        if faster is None:
            faster = (time.perf_counter() - start) / len(chunk) < seq_seconds
            wl.batch_faster[decision] = faster
            if not faster:
                return done
    return done
