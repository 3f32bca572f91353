"""Mitigations, one file each, registered by name (``faults.mitigations[].name``)."""

from faultlab.workers.faults.mitigations.base import MITIGATIONS, Bounds, Mitigation

__all__ = ["MITIGATIONS", "Bounds", "Mitigation"]
