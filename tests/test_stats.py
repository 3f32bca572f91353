"""``faultlab.stats``: one Wilson interval and one Kish effective size for every engine."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from faultlab.stats import (
    effective_n_without_replacement,
    two_sided_z,
    wilson_bounds,
    wilson_half_width,
    wilson_interval,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (37, 200), (1, 5000)])
def test_wilson_forms_agree_with_scipy(k: int, n: int) -> None:
    z = two_sided_z(0.95)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert wilson_bounds(k / n, n, z) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert wilson_half_width(k, n, z) == pytest.approx((ci.high - ci.low) / 2, rel=1e-6)


def test_wilson_edge_cases() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_bounds(0.3, 0.0, 1.96) == (0.0, 1.0)
    assert wilson_bounds(math.nan, 10.0, 1.96) == (0.0, 1.0)
    assert wilson_bounds(0.3, math.inf, 1.96) == (0.3, 0.3)
    assert wilson_half_width(1, 0, 1.96) == 0.5


def test_effective_n_folds_the_finite_population_correction() -> None:
    assert effective_n_without_replacement(50, 100) == pytest.approx(50 * 99 / 50)
    assert effective_n_without_replacement(100, 100) == math.inf
    n, population = 30, 400
    fpc = math.sqrt((population - n) / (population - 1))
    assert effective_n_without_replacement(n, population) == pytest.approx(n / fpc**2)
