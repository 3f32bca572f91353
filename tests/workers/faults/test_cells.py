"""A stratum's cell permutation (``workers/faults/cells.py``): a bijection of the cells at every
size, deterministic in its seed, uniform enough to sample from, and constant in memory for
strata of hundreds of millions of cells (a ResNet-18 layer × bit campaign)."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from scipy import stats

from faultlab.workers.faults import cells as cells_mod
from faultlab.workers.faults.cells import TABLE_LIMIT, cell_at


@pytest.mark.parametrize("cells", [2, 3, 17, 1000, 4097, 65_537])
def test_every_size_is_a_bijection(monkeypatch: pytest.MonkeyPatch, cells: int) -> None:
    if cells <= TABLE_LIMIT:  # the Feistel path at small sizes too
        monkeypatch.setattr(cells_mod, "TABLE_LIMIT", 1)
    drawn = [cell_at(7, cells, j) for j in range(cells)]
    assert sorted(drawn) == list(range(cells))
    assert [cell_at(7, cells, cells + j) for j in range(min(5, cells))] == drawn[:5]  # wraps


def test_small_strata_keep_their_earlier_plans() -> None:
    table = np.random.default_rng(99).permutation(5000)
    assert [cell_at(99, 5000, j) for j in range(50)] == table[:50].tolist()


def test_deterministic_in_the_seed_and_different_across_seeds() -> None:
    big = 357_000_000
    first = [cell_at(1, big, j) for j in range(200)]
    assert first == [cell_at(1, big, j) for j in range(200)]
    assert first != [cell_at(2, big, j) for j in range(200)]
    assert len(set(first)) == 200 and all(0 <= c < big for c in first)


def test_the_first_draws_are_uniform_over_the_cells() -> None:
    """The first 4000 draws of a 10⁶-cell stratum over 20 equal bins, 30 seeds: the
    chi-square p-values are themselves uniform (no bias towards some region of the cells)."""
    cells, n, bins = 1_000_000, 4000, 20
    pvalues = []
    for seed in range(30):
        drawn = np.array([cell_at(seed, cells, j) for j in range(n)])
        counts = np.bincount(drawn * bins // cells, minlength=bins)
        pvalues.append(stats.chisquare(counts).pvalue)
    assert stats.kstest(pvalues, "uniform").pvalue > 0.001


def test_huge_strata_cost_no_memory_and_little_time() -> None:
    tracemalloc.start()
    start = time.perf_counter()
    drawn = [cell_at(s, 75_497_472, j) for s in range(100) for j in range(50)]
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(drawn) == 5000 and peak < 2_000_000  # a permutation would be 600 MB
    assert seconds < 5.0
