"""How one planning round spreads its trials across strata: PyTorchFI-style uniform plans
(a multinomial over the fault space) and adaptive rounds whose margin bounds a layer's or a
workload's stratified rate (Neyman allocation). Pure functions of the strata and the
observed outcomes, like the rest of :mod:`~faultlab.workers.faults.planning`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from faultlab.workers.faults.estimates import weighted_interval
from faultlab.workers.faults.params import FaultParams

if TYPE_CHECKING:
    from faultlab.workers.faults.planning import Stratum


def scope_key(st: Stratum, scope: str) -> str:
    """The group whose CI ``margin`` bounds (``faults.margin_scope``)."""
    if scope == "workload":
        return st.workload
    return f"{st.workload}|{st.dtype}|{st.layer}"


def grouped_round(
    params: FaultParams, all_strata: list[Stratum], done: dict[str, list[bool]], z: float,
    cap_each: float,
) -> list[tuple[Stratum, int, int]]:
    """One adaptive round when ``margin`` bounds a layer's (or workload's) stratified rate:
    unfinished groups get their next trials by Neyman allocation (Neyman 1934), n_h ∝ W_h S_h
    with S_h from the smoothed observed rate, growing each group at most twofold per round."""
    groups: dict[str, list[Stratum]] = {}
    for st in all_strata:
        groups.setdefault(scope_key(st, params.margin_scope), []).append(st)
    plan: list[tuple[Stratum, int, int]] = []
    target_var = (params.margin / z) ** 2
    for members in groups.values():
        parts = []
        for st in members:
            hits = done.get(st.key, [])
            parts.append((st.weight, st.frame, len(hits), sum(hits)))
        if any(n == 0 for _, _, n, _ in parts):
            continue  # cannot happen after the pilot round; be safe
        p, lo, hi = weighted_interval(parts, z)
        if (hi - lo) / 2.0 <= params.margin:
            continue
        total_w = sum(w for w, _, _, _ in parts)
        spread = []
        for w, _, n, k in parts:
            ps = (k + 0.5) / (n + 1.0)
            spread.append(w / total_w * math.sqrt(ps * (1.0 - ps)))
        limits = [min(st.population, cap_each, 10**9) for st in members]
        n_now = sum(n for _, _, n, _ in parts)
        n_total = sum(spread) ** 2 / target_var
        budget = min(max(n_total, n_now * 1.25), n_now * 2.0)
        steps = []
        for (_, _, n, _), s_h, limit in zip(parts, spread, limits, strict=True):
            want = budget * s_h / sum(spread)
            steps.append(int(max(0, min(math.ceil(want) - n, limit - n))))
        if sum(steps) == 0:
            # allocation says "enough" but the CI disagrees: feed the noisiest open stratum
            open_ = [i for i, part in enumerate(parts) if part[2] < limits[i]]
            if not open_:
                continue
            i = max(open_, key=lambda j: spread[j] ** 2 / parts[j][2])
            steps[i] = int(min(max(4, parts[i][2] // 2), limits[i] - parts[i][2]))
        for st, (_, _, n, _), step in zip(members, parts, steps, strict=True):
            if step > 0:
                plan.append((st, n, step))
    return plan


def uniform_round(
    params: FaultParams, seed: int, all_strata: list[Stratum]
) -> list[tuple[Stratum, int, int]]:
    """PyTorchFI-style plan: ``trials`` faults uniform over the whole fault space, booked
    to the strata they fall in (ordinals continue each stratum's permutation)."""
    sizes = np.array([st.cells for st in all_strata], dtype=np.float64)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(int(params.trials or 0), sizes / sizes.sum())
    out = []
    for st, c in zip(all_strata, counts, strict=True):
        c = int(min(c, st.cells)) if params.ber is None else int(c)
        if c:
            out.append((st, 0, c))
    return out
