"""Watermarking schemes, one file each, registered by name (plug-in API in ``base.py``)."""
