"""Watermarking schemes, one file each, registered in ``base.SCHEMES`` by name with their own
``Params`` and citation (plug-in API in ``base.py``)."""
