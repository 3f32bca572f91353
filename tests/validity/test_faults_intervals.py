"""Monte Carlo coverage of every interval the fault report gives, against known truth
(issue 12's proof): one stratum sampled without replacement (Wilson with the FPC), stratum-
weighted rates over unequal strata, per-node (per-input) rates whose nodes cluster by trial,
paired mitigation differences, and McNemar's false-claim rate under no effect.

Each check draws ``reps`` synthetic campaigns from a known fault population and asserts the
observed coverage is within the binomial tolerance the repetition count implies
(:func:`tests.validity.conftest.coverage_tolerance`); ``FAULTLAB_SLOW=1`` runs 10 × more.
The ``coverage_*`` functions are shared with ``bench/_validity_faults.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from faultlab.stats import two_sided_z
from faultlab.workers.faults import estimates as est
from tests.validity.conftest import claim_rate_limit, coverage_tolerance, repetitions

NOMINAL = 0.95
Z = two_sided_z(NOMINAL)
#: Truths of the checks (each a scenario a campaign meets): rare, moderate and common rates.
STRATA = [  # (population N_h, failures K_h in it, trials n_h)
    [(4000, 40, 60), (1000, 300, 40), (200, 150, 20)],
    [(50_000, 25, 200), (20_000, 2000, 100), (100, 50, 100)],
    [(3000, 0, 50), (600, 6, 50)],
]


def _inside(value: float, lo: float, hi: float) -> bool:
    return lo - 1e-12 <= value <= hi + 1e-12


def coverage_single_stratum(reps: int, seed: int = 0) -> tuple[float, int]:
    """Coverage of :func:`stratum_interval` (hypergeometric draws), and intervals outside
    [0, 1]."""
    rng = np.random.default_rng(seed)
    hits = outside = total = 0
    for scenario in STRATA:
        for N, K, n in scenario:
            for k in rng.hypergeometric(K, N - K, n, size=reps):
                p, lo, hi = est.stratum_interval(N, n, int(k), Z)
                hits += _inside(K / N, lo, hi)
                outside += not (0.0 <= lo <= hi <= 1.0)
                total += 1
    return hits / total, outside


def coverage_stratified(reps: int, seed: int = 1) -> tuple[float, int]:
    """Coverage of the stratum-weighted rate (:func:`weighted_interval`, weights = fault-space
    sizes, FPC per stratum) over the scenarios."""
    rng = np.random.default_rng(seed)
    hits = outside = total = 0
    for scenario in STRATA:
        truth = sum(K for _, K, _ in scenario) / sum(N for N, _, _ in scenario)
        draws = [rng.hypergeometric(K, N - K, n, size=reps) for N, K, n in scenario]
        for r in range(reps):
            parts = [(N, N, n, int(d[r])) for (N, _, n), d in zip(scenario, draws, strict=True)]
            _, lo, hi = est.weighted_interval(parts, Z)
            hits += _inside(truth, lo, hi)
            outside += not (0.0 <= lo <= hi <= 1.0)
            total += 1
    return hits / total, outside


#: Per-node scenarios: (weight, trials, nodes per trial, share of trials that corrupt almost
#: every node): most trials flip almost nothing, a few flip almost everything.
CLUSTERS = [
    [(3.0, 40, 400, 0.1), (1.0, 40, 400, 0.5)],
    [(1.0, 60, 17, 0.05)],
    [(5.0, 30, 300, 0.02), (1.0, 50, 300, 0.3)],
]


def _node_truth(heavy: float) -> float:
    return heavy * 20.0 / 21.0 + (1.0 - heavy) * 1.0 / 51.0  # E[q], q ~ Beta mixture


def coverage_cluster(reps: int, seed: int = 2) -> tuple[float, int]:
    """Coverage of the per-node rate (:func:`cluster_interval`) when a trial's nodes flip
    together (q_i ~ Beta(20, 1) for a heavy trial, Beta(1, 50) otherwise; y_i ~ Bin(m, q_i))."""
    rng = np.random.default_rng(seed)
    hits = outside = total = 0
    for scenario in CLUSTERS:
        weights = sum(w for w, _, _, _ in scenario)
        truth = sum(w / weights * _node_truth(h) for w, _, _, h in scenario)
        for _ in range(reps):
            parts = []
            for w, n, m, heavy in scenario:
                big = rng.random(n) < heavy
                q = np.where(big, rng.beta(20, 1, n), rng.beta(1, 50, n))
                parts.append((w, math.inf, rng.binomial(m, q).tolist(), [m] * n))
            _, lo, hi = est.cluster_interval(parts, Z)
            hits += _inside(truth, lo, hi)
            outside += not (0.0 <= lo <= hi <= 1.0)
            total += 1
    return hits / total, outside


#: Paired scenarios: per stratum (weight, trials, P(fail both), P(fixed), P(broken)).
PAIRS = [
    [(1.0, 40, 0.05, 0.20, 0.02)],
    [(3.0, 60, 0.10, 0.05, 0.05), (1.0, 30, 0.0, 0.3, 0.0)],
    [(1.0, 200, 0.01, 0.01, 0.0)],
]


def _pair_draws(rng: np.random.Generator, n: int, both: float, fixed: float,
                broken: float) -> tuple[int, int]:
    cells = rng.multinomial(n, [both, fixed, broken, 1.0 - both - fixed - broken])
    return int(cells[1]), int(cells[2])


def coverage_paired(reps: int, seed: int = 3) -> tuple[float, int]:
    """Coverage of the stratified Agresti–Min paired difference (:func:`paired_difference`)."""
    rng = np.random.default_rng(seed)
    hits = outside = total = 0
    for scenario in PAIRS:
        weights = sum(s[0] for s in scenario)
        truth = sum(w / weights * (br - fx) for w, _, _, fx, br in scenario)
        for _ in range(reps):
            parts = []
            for w, n, both, fx, br in scenario:
                parts.append((w, math.inf, n, *_pair_draws(rng, n, both, fx, br)))
            _, lo, hi = est.paired_difference(parts, Z)
            hits += _inside(truth, lo, hi)
            outside += not (-1.0 <= lo <= hi <= 1.0)
            total += 1
    return hits / total, outside


def mcnemar_false_claims(reps: int, alpha: float = 0.05, seed: int = 4) -> float:
    """Share of campaigns where McNemar rejects "no effect" when fixed and broken pairs are
    equally likely."""
    rng = np.random.default_rng(seed)
    claims = 0
    for _ in range(reps):
        fixed, broken = _pair_draws(rng, 80, 0.1, 0.08, 0.08)
        claims += est.mcnemar_p(fixed, broken) <= alpha
    return claims / reps


CHECKS = {
    "single_stratum": coverage_single_stratum,
    "stratified": coverage_stratified,
    "per_node_clustered": coverage_cluster,
    "paired_difference": coverage_paired,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_interval_covers_known_truth(name: str) -> None:
    reps = repetitions(300)
    scenarios = {"single_stratum": 8, "stratified": 3, "per_node_clustered": 3,
                 "paired_difference": 3}[name]
    coverage, outside = CHECKS[name](reps)
    assert outside == 0
    assert coverage >= NOMINAL - coverage_tolerance(NOMINAL, reps * scenarios), coverage


def test_mcnemar_false_claim_rate_is_at_most_alpha() -> None:
    reps = repetitions(1000)
    assert mcnemar_false_claims(reps) <= claim_rate_limit(0.05, reps)


def test_trial_times_node_wilson_would_under_cover() -> None:
    """The check has power: the old by-degree interval (Wilson over nodes × trials, as if
    independent) misses the clustered truth far more often than 5 %."""
    from faultlab.stats import wilson_interval

    rng = np.random.default_rng(5)
    reps, hits = repetitions(200), 0
    truth = _node_truth(0.1)
    for _ in range(reps):
        big = rng.random(40) < 0.1
        q = np.where(big, rng.beta(20, 1, 40), rng.beta(1, 50, 40))
        y = rng.binomial(400, q)
        lo, hi = wilson_interval(int(y.sum()), 400 * 40)
        hits += _inside(truth, lo, hi)
    assert hits / reps < NOMINAL - coverage_tolerance(NOMINAL, reps)
