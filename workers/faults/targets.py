"""The sites of a campaign's targets: one target, or several in one campaign.

``faults.target`` may list several targets (``[weight, activation, message]``). Each is
checked against the workload and its sites are discovered on their own, as a single-target
campaign would; site names never collide across targets (``conv1.weight``, ``conv1#0``,
``conv1:message#0``), so a workload keeps one site table per number format, and every site
knows its target. ``faults.layers`` then applies across targets: a name must name a site of
at least one of them, and every target must keep at least one named site.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.faults.loading import check_target, discover_sites, select_sites
from faultlab.workers.faults.params import FaultParams
from faultlab.workers.faults.sites import SiteInfo, parameter_names


def check_targets(params: FaultParams, model: nn.Module, kind: str, workload: str) -> None:
    """Every target fits the workload (graph targets need a graph model, …)."""
    for target in params.targets:
        check_target(params.for_target(target), model, kind, workload)
    if params.activation_position == "per_input" and kind != "image":
        raise SpecError("faults.activation_position",
                        f"per_input positions are for image models; {workload} evaluates one "
                        "graph per forward (its activation index already picks a node)",
                        ["same"])


def _names(site: SiteInfo) -> tuple[str, str, str]:
    return site.module, site.name, site.name.split("#")[0]


def campaign_sites(model: nn.Module, params: FaultParams, dtype: str, args: list[tuple[Any, ...]],
                   kind: str, workload: str) -> list[SiteInfo]:
    """The selected sites of every target of the campaign in ``model`` (format ``dtype``)."""
    if not params.multi_target:
        return select_sites(discover_sites(model, params, dtype, args, kind), params, model,
                            workload)
    found = {t: discover_sites(model, params.for_target(t), dtype, args, kind)
             for t in params.targets}
    unknown = [n for n in params.layers
               if not any(n in _names(s) for sites in found.values() for s in sites)]
    if unknown:
        valid = sorted({n for sites in found.values() for s in sites for n in _names(s)[:2] if n}
                       | {n for t in ("weight", "bias") if t in params.targets
                          for n in parameter_names(model, t)})
        close = difflib.get_close_matches(unknown[0], valid, n=6, cutoff=0.4) or valid[:12]
        raise SpecError("faults.layers", f"unknown layer {unknown[0]!r} for targets "
                        f"{params.targets} in {workload} ({len(valid)} valid names)", close)
    chosen: list[SiteInfo] = []
    for target, sites in found.items():
        names = [n for n in params.layers if any(n in _names(s) for s in sites)]
        if params.layers and not names:
            raise SpecError("faults.layers", f"names no {target!r} site in {workload}; name one "
                            f"or drop {target!r} from faults.target",
                            sorted({s.module or s.name for s in sites})[:12])
        sub = params.for_target(target).model_copy(update={"layers": names})
        chosen += select_sites(sites, sub, model, workload)
    return chosen


__all__ = ["campaign_sites", "check_targets"]
