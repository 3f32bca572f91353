"""Removal attacks, one file each, registered by name (knobs and parameters in ``catalog``)."""
