"""Removal attacks, one file each, registered in ``base.ATTACKS`` by name with their own
``Params`` (carrying the strength knob) and citation."""
