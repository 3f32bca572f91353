"""Fault and sparsity intervals' Monte Carlo figures for ``bench/validity.py`` (issue 12).

``validity_figures()`` runs the coverage checks of ``tests/validity/test_faults_intervals.py``
and ``tests/validity/test_sparsity_intervals.py`` with more repetitions and returns the lowest
coverage over every interval type and scenario, the per-type coverages, McNemar's false-claim
rate over its α, and how many intervals left their parameter space.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.validity import test_faults_intervals as faults  # noqa: E402
from tests.validity import test_sparsity_intervals as sparsity  # noqa: E402


def validity_figures(reps: int = 2000, sparsity_reps: int = 2000) -> dict[str, Any]:
    """``{"min_coverage_faults", "intervals_outside_unit_faults", "coverage_faults",
    "mcnemar_false_claim_rate_over_alpha", "min_coverage_sparsity", ...}``; the sparsity
    checks take milliseconds per repetition and run ``sparsity_reps`` (at 100 a correct
    interval reads 0.925 by chance: the Monte Carlo standard error is 0.022)."""
    coverage: dict[str, float] = {}
    outside = 0
    for name, check in faults.CHECKS.items():
        cov, out = check(reps)
        coverage[name] = round(cov, 4)
        outside += out
    sparse: dict[str, float] = {}
    for name, sparse_check in sparsity.CHECKS.items():
        cov, out = sparse_check(sparsity_reps)
        sparse[name] = round(cov, 4)
        outside += out
    alpha = 0.05
    return {
        "repetitions_faults": reps,
        "repetitions_sparsity": sparsity_reps,
        "min_coverage_faults": min(coverage.values()),
        "coverage_faults": coverage,
        "min_coverage_sparsity": min(sparse.values()),
        "coverage_sparsity": sparse,
        "mcnemar_false_claim_rate_over_alpha": round(
            faults.mcnemar_false_claims(reps, alpha) / alpha, 4),
        "intervals_outside_unit_faults": outside,
    }
