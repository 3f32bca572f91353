"""Batched activation faults in image models: K faulty outputs of one layer per forward.

An activation fault changes the output of one module call. Its K variants are made by running
that module K times on its cached golden inputs with each trial's :class:`Injector` active (so
the fault is applied by the very hook the sequential path uses, whatever the fault mode); the
K outputs are folded into the batch dimension and everything after the module runs once on
K × B samples (:func:`~faultlab.workers.faults.batched.fold_after`). Only modules the traced
graph calls exactly once qualify, and only where two clean variants reproduce the golden output
bit for bit (checked once per site), so a trial's outcome never depends on its batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from faultlab.workers.faults.batched import call_inputs, fold_after
from faultlab.workers.faults.inject import Injector
from faultlab.workers.faults.models import FaultModel
from faultlab.workers.faults.sites import SiteInfo

if TYPE_CHECKING:
    from faultlab.workers.faults.workload import Workload

#: Targets whose image sites :func:`activation_outputs` batches.
VALUE_TARGETS = frozenset({"activation"})


def _plan(wl: Workload, dtype: str, site: SiteInfo) -> Any:
    """(suffix runner, call node, program after it), or None where the site cannot fold."""
    if site.target not in VALUE_TARGETS or site.call not in (0, None):
        return None
    runner = wl.suffix_runner(dtype, "none")
    after = runner.after(site.module) if runner is not None else None
    if runner is None or after is None:
        return None
    call, program = after
    if not all(isinstance(env.get(call.name), torch.Tensor) for env in runner.env):
        return None
    return runner, call, program


def _layout(value: torch.Tensor) -> str:
    if value.dim() == 4 and not value.is_contiguous() and value.is_contiguous(
            memory_format=torch.channels_last):
        return "channels_last"
    return "contiguous" if value.is_contiguous() else "strided"


def _in_layout(value: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "channels_last":
        return value.contiguous(memory_format=torch.channels_last)
    return value.contiguous() if layout == "contiguous" else value


def layout_exact(wl: Workload, dtype: str, site: SiteInfo, layout: str) -> bool:
    """Whether, with ``site``'s golden value in memory ``layout`` (a faulted copy may come
    in another layout than the module's own output), two folded clean copies give bit for bit
    what one unfolded copy gives (checked once per site and layout, and kept)."""
    key = (dtype, f"{site.name}@{layout}")
    if key not in wl._exact:
        plan = _plan(wl, dtype, site)
        exact = plan is not None and layout != "strided"
        if plan is not None and exact:
            runner, call, program = plan
            for c, env in enumerate(runner.env):
                value = _in_layout(env[call.name], layout)
                one = fold_after(runner, c, call, program, [value])
                two = fold_after(runner, c, call, program, [value, value.clone()])
                exact = exact and all(torch.equal(o, one[0]) for o in two)
        wl._exact[key] = exact
    return wl._exact[key]


def activation_exact(wl: Workload, dtype: str, site: SiteInfo) -> bool:
    """Whether the folded pass can run at ``site``: a single call of its module, and folding
    is bit-exact there (for the module's own output layout; another is checked when seen)."""
    plan = _plan(wl, dtype, site)
    if plan is None:
        return False
    runner, call, _ = plan
    return layout_exact(wl, dtype, site, _layout(runner.env[0][call.name]))


def activation_outputs(wl: Workload, dtype: str, site: SiteInfo,
                       trials: list[list[dict[str, Any]]], fault_model: FaultModel
                       ) -> torch.Tensor | None:
    """Unmitigated outputs ``[K, rows, classes]`` of ``len(trials)`` activation-fault trials of
    ``site``; None where :func:`activation_exact` says no."""
    plan = _plan(wl, dtype, site)
    if plan is None or not activation_exact(wl, dtype, site):
        return None
    runner, call, program = plan
    model = wl.models[dtype]
    layer = model.get_submodule(site.module)
    outs = []
    offset = 0  # the chunk's first input (per-input activation faults)
    for c in range(len(runner.env)):
        args, kwargs = call_inputs(runner, c, call)
        variants = []
        for faults in trials:
            injector = Injector(model, faults, wl.sites[dtype], fault_model, per_sample=True)
            with injector, torch.no_grad():
                injector.reset_calls(offset)
                variants.append(layer(*args, **kwargs))
        offset += int(variants[0].shape[0])
        layouts = {_layout(v) for v in variants}
        if len(layouts) != 1 or not layout_exact(wl, dtype, site, layouts.pop()):
            return None
        outs.append(fold_after(runner, c, call, program, variants))
    return torch.cat(outs, dim=1).float() if len(outs) > 1 else outs[0].float()
