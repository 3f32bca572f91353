"""Campaign-level estimates of a fault campaign: stratified rates, cluster-aware per-input
rates and paired mitigation effects (pure functions of counts; no torch, no pandas).

A stratum ``h`` is described by its **weight** ``W_h`` (its share of the fault space) and its
**frame** ``N_h``: the number of distinct faults the planner's permutation enumerates, or
``math.inf`` when a trial's fault carries a fresh random draw (a random value, the bits of a
multi-bit upset) so that trials are independent draws and no stratum is ever exhausted.

* One stratum: Wilson (1927) at the Kish (1965) effective size ``n / fpc²`` with
  ``fpc = sqrt((N − n)/(N − 1))``; an enumerated stratum (``n = N``) is exact.
* Several strata (Cochran, *Sampling Techniques*, 3rd ed. 1977, §5.3): ``p = Σ W_h p̂_h``,
  ``var = Σ W_h² p̃_h (1 − p̃_h)/n_h · fpc_h²`` with add-half smoothed ``p̃_h`` and Wilson's
  interval at the Kish effective size ``p̃ (1 − p̃)/var``.
* Per-input (per-node) rates: each trial is a cluster of ``m_i`` inputs with ``y_i`` hit, so
  the ratio estimator ``R_h = Σ y_i / Σ m_i`` with the cluster variance (Cochran §6.3)
  ``v_h = (Σ (y_i − R_h m_i)²/m̄_h² + ½ R_h² + ½ (1 − R_h)²) / (n_h (n_h + 1))`` (half a
  pseudo-cluster at 0 and at 1, so rare heavy trials not yet seen still count as
  uncertainty); stratified ``R = Σ W_h R_h``, and
  Wilson's interval at an effective size kept between the number of clusters (every input of a
  trial alike) and the number of inputs (inputs independent).
* Paired mitigation effects: on the identical plan each trial gives the pair (no mitigation,
  mitigation); the difference of rates ``d = Σ W_h (ĉ_h − b̂_h)`` (``b`` fixed, ``c``
  broken, per trial) with the MOVER interval (Zou & Donner, *Statistics in Medicine* 27, 2008;
  Newcombe's paired method 10, *Stat. Med.* 17, 1998, with φ = 0) on Wilson limits ``l, u`` of
  each discordant cell: ``d − sqrt(Σ W_h² ((ĉ − l_c)² + (u_b − b̂)²))`` to
  ``d + sqrt(Σ W_h² ((u_c − ĉ)² + (b̂ − l_b)²))``; McNemar's exact test (McNemar 1947, exact
  binomial form) on the discordant pairs, ``B ~ Bin(b + c, ½)``, two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from faultlab.stats import wilson_bounds

Interval = tuple[float, float, float]


def fpc(population: float, n: int) -> float:
    """Finite-population correction of a standard error, sampling without replacement."""
    if math.isinf(population) or population <= 1:
        return 1.0
    return math.sqrt(max(population - n, 0.0) / (population - 1.0))


def stratum_interval(population: float, n: int, k: int, z: float) -> Interval:
    """Rate and Wilson interval of one stratum sampled without replacement from a frame of
    ``population`` faults: Wilson at the effective size ``n / fpc²``; a census is exact."""
    if n <= 0:
        return math.nan, 0.0, 1.0
    p = k / n
    f = fpc(population, n)
    if f == 0.0:
        return p, p, p
    lo, hi = wilson_bounds(p, n / (f * f), z)
    return p, min(lo, p), max(hi, p)


def stratified_interval(parts: Sequence[tuple[float, int, int]], z: float) -> Interval:
    """Rate over strata ``(weight-and-frame N_h, trials n_h, failures k_h)``; see the module
    docstring. ``N_h`` is both the weight and the frame (use :func:`weighted_interval` when
    they differ)."""
    return weighted_interval([(N, N, n, k) for N, n, k in parts], z)


def weighted_interval(parts: Sequence[tuple[float, float, int, int]], z: float) -> Interval:
    """Rate over strata ``(weight W_h, frame N_h, trials n_h, failures k_h)`` (strata with no
    trial are left out); exact when every stratum was enumerated."""
    parts = [p for p in parts if p[2] > 0]
    if not parts:
        return math.nan, 0.0, 1.0
    total = sum(w for w, _, _, _ in parts)
    p = var = p_smooth = 0.0
    for weight, frame, n, k in parts:
        w = weight / total
        p += w * (k / n)
        ps = (k + 0.5) / (n + 1.0)
        p_smooth += w * ps
        f = fpc(frame, n)
        var += w * w * ps * (1.0 - ps) / n * f * f
    if var <= 0.0:
        return p, p, p  # every stratum enumerated: the rate is exact
    lo, hi = wilson_bounds(p, p_smooth * (1.0 - p_smooth) / var, z)
    return p, min(lo, p), max(hi, p)


def weighted_mean(parts: Sequence[tuple[float, Sequence[float]]]) -> float:
    """``Σ W_h x̄_h`` over strata ``(weight, values)`` with at least one value."""
    parts = [(w, v) for w, v in parts if len(v)]
    total = sum(w for w, _ in parts)
    if not parts or total <= 0:
        return math.nan
    return float(sum(w / total * float(np.mean(v)) for w, v in parts))


def cluster_interval(
    parts: Sequence[tuple[float, float, Sequence[float], Sequence[float]]], z: float
) -> Interval:
    """Per-input rate over strata ``(weight, frame, hits y_i, inputs m_i)`` of trial clusters;
    see the module docstring."""
    parts = [p for p in parts if len(p[2]) and float(np.sum(p[3])) > 0]
    if not parts:
        return math.nan, 0.0, 1.0
    total = sum(w for w, _, _, _ in parts)
    rate = var = clusters = units = 0.0
    enumerated = True
    for weight, frame, hits, sizes in parts:
        w = weight / total
        y, m = np.asarray(hits, dtype=float), np.asarray(sizes, dtype=float)
        n = len(y)
        r = float(y.sum() / m.sum())
        rate += w * r
        f = fpc(frame, n)
        enumerated = enumerated and f == 0.0
        resid = (y - r * m) / m.mean()
        # half a pseudo-cluster at 0 and half at 1 (the add-half idea): a stratum whose rare
        # heavy trials have not shown yet keeps its uncertainty
        v = (float(np.sum(resid * resid)) + 0.5 * (r * r + (1.0 - r) ** 2)) / (n * (n + 1))
        var += w * w * v * f * f
        clusters += w * w / n
        units += w * w / float(m.sum())
    if enumerated:
        return rate, rate, rate
    low_n, high_n = 1.0 / clusters, 1.0 / units  # fully correlated / independent inputs
    n_eff = rate * (1.0 - rate) / var if var > 0 else low_n
    lo, hi = wilson_bounds(rate, min(max(n_eff, low_n), high_n), z)
    return rate, min(lo, rate), max(hi, rate)


def paired_difference(
    parts: Sequence[tuple[float, float, int, int, int]], z: float
) -> Interval:
    """Difference of rates (mitigation − none) over strata ``(weight, frame, trials n_h,
    fixed b_h, broken c_h)`` with the stratified MOVER-Wilson interval, within [−1, 1]."""
    parts = [p for p in parts if p[2] > 0]
    if not parts:
        return math.nan, -1.0, 1.0
    total = sum(w for w, _, _, _, _ in parts)
    diff = down = up = 0.0
    for weight, frame, n, fixed, broken in parts:
        w = weight / total
        f = fpc(frame, n)
        n_eff = n / (f * f) if f > 0 else math.inf
        b, c = fixed / n, broken / n
        lb, ub = wilson_bounds(b, n_eff, z) if f > 0 else (b, b)
        lc, uc = wilson_bounds(c, n_eff, z) if f > 0 else (c, c)
        diff += w * (c - b)
        down += w * w * ((c - lc) ** 2 + (ub - b) ** 2)
        up += w * w * ((uc - c) ** 2 + (b - lb) ** 2)
    return diff, max(-1.0, diff - math.sqrt(down)), min(1.0, diff + math.sqrt(up))


def mcnemar_p(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value of ``fixed`` vs ``broken`` discordant pairs."""
    if fixed + broken == 0:
        return 1.0
    return float(stats.binomtest(int(broken), int(fixed + broken), 0.5).pvalue)
