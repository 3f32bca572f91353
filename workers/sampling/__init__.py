"""Operational-accuracy sampling campaigns: the DAIC assessment-and-improvement cycle.

Pseudo-oracles (``oracles/``), samplers with their estimators (``samplers/``), the operational
pool and its shift generators (``operational.py``, ``shifts.py``), the improvement cycle
(``improve.py``) and the engine (``engine.py``). See ``docs/sampling.md``.
"""
