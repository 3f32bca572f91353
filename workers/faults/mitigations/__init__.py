"""Mitigations, one file each, registered by name (``faults.mitigations[].name``)."""

from __future__ import annotations

from faultlab.errors import SpecError
from faultlab.workers.faults.mitigations.base import Bounds, Mitigation
from faultlab.workers.faults.mitigations.clipping import Clipping
from faultlab.workers.faults.mitigations.gnn_bound import GnnBound
from faultlab.workers.faults.mitigations.ranger import Ranger

MITIGATIONS: dict[str, Mitigation] = {m.name: m for m in (Ranger(), Clipping(), GnnBound())}


def get_mitigation(name: str, field: str = "faults.mitigations") -> Mitigation:
    if name not in MITIGATIONS:
        raise SpecError(f"{field}.name", f"unknown mitigation {name!r}", sorted(MITIGATIONS))
    return MITIGATIONS[name]


__all__ = ["MITIGATIONS", "Bounds", "Mitigation", "get_mitigation"]
