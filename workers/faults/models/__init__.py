"""Fault models, one file each, registered by name (``faults.fault_model`` in a spec)."""

from __future__ import annotations

from faultlab.errors import SpecError
from faultlab.workers.faults.models.adjacent_bitflip import AdjacentBitFlip
from faultlab.workers.faults.models.base import DrawContext, ElementFormat, FaultModel, mask
from faultlab.workers.faults.models.bitflip import BitFlip
from faultlab.workers.faults.models.multi_bitflip import MultiBitFlip
from faultlab.workers.faults.models.random_value import RandomValue
from faultlab.workers.faults.models.stuck_at_0 import StuckAt0
from faultlab.workers.faults.models.stuck_at_1 import StuckAt1
from faultlab.workers.faults.models.zero import Zero

FAULT_MODELS: dict[str, FaultModel] = {
    m.name: m
    for m in (
        BitFlip(), MultiBitFlip(), AdjacentBitFlip(), StuckAt0(), StuckAt1(), RandomValue(), Zero()
    )
}


def get_fault_model(name: str) -> FaultModel:
    if name not in FAULT_MODELS:
        raise SpecError("faults.fault_model", f"unknown fault model {name!r}", sorted(FAULT_MODELS))
    return FAULT_MODELS[name]


__all__ = ["FAULT_MODELS", "DrawContext", "ElementFormat", "FaultModel", "get_fault_model", "mask"]
