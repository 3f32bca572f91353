"""Watermark-robustness campaigns: trigger-set watermarking schemes (the Fourier
frequency-sensitivity watermark of arXiv 2208.03944, Adi et al. 2018, Zhang et al. 2018),
removal attacks swept over their strengths, and the binomial ownership test.

Layout: ``params.py`` / ``catalog.py`` (the spec, no torch), ``engine.py`` (the campaign),
``schemes/`` and ``attacks/`` (one method per file, registered by name), ``sensitivity.py``
(the Fourier perturbation map), ``verify.py`` (statistics), ``cache.py`` (watermarked models
computed once), ``plots.py``.
"""
