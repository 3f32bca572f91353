"""Fault models, one file each, registered by name (``faults.fault_model`` in a spec)."""

from faultlab.workers.faults.models.base import (
    FAULT_MODELS,
    DrawContext,
    ElementFormat,
    FaultModel,
    mask,
)

__all__ = ["FAULT_MODELS", "DrawContext", "ElementFormat", "FaultModel", "mask"]
