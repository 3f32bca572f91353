"""Statistical fault injection: strata, sample sizes and the trials of each planning round.

* Sample size of a stratum with ``N`` faults for margin ``e`` at two-sided quantile ``t`` and
  expected proportion ``p`` — Leveugle, Calvez, Maistri, Vanhauwaert, "Statistical Fault
  Injection: Quantified Error and Confidence", DATE 2009:
  ``n = N / (1 + e² (N − 1) / (t² p (1 − p)))``.
* Adaptive mode (the iterative variant): a pilot round per stratum, then rounds that re-plan
  each unfinished stratum with its observed proportion, until its Wilson interval (Wilson 1927)
  half-width times the finite-population correction ``sqrt((N − n)/(N − 1))`` is ≤ ``e``.

Faults are drawn without replacement inside a stratum (a seeded permutation of its cells), so
the rounds of an adaptive campaign never repeat a cell. An exhausted stratum is exact only for
an exhaustive fault model (single bit, zero); a model that draws a value or bits per trial
samples with replacement (``Stratum.frame`` is infinite).
Everything here is deterministic in (spec, meta, previous records): recovery re-plans.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faultlab.errors import SpecError
from faultlab.stats import two_sided_z, wilson_half_width
from faultlab.workers.faults.estimates import fpc, stratum_interval, weighted_interval
from faultlab.workers.faults.models import FAULT_MODELS, DrawContext, ElementFormat, FaultModel
from faultlab.workers.faults.params import FaultParams

#: Above this many cells a stratum is sampled with replacement (collisions are negligible).
PERMUTATION_LIMIT = 1 << 24


def leveugle_sample_size(
    population: float, margin: float, confidence: float = 0.95, p: float = 0.5
) -> int:
    """Injections for ``margin`` at ``confidence`` (two-sided) in a population of ``population``
    faults (Leveugle et al., DATE 2009); ``math.inf`` population = no finite-population
    correction."""
    t = two_sided_z(confidence)
    core = t * t * p * (1.0 - p) / (margin * margin)
    if math.isinf(population):
        return math.ceil(core)
    n = population / (1.0 + margin * margin * (population - 1.0) / (t * t * p * (1.0 - p)))
    return min(math.ceil(n - 1e-9), int(population))


def trials_for_margin(p_hat: float, margin: float, z: float, population: float, start: int) -> int:
    """Smallest n ≥ ``start`` whose Wilson half-width (× FPC) at proportion ``p_hat`` is
    ≤ margin."""

    def ok(n: int) -> bool:
        return wilson_half_width(p_hat * n, n, z) * fpc(population, n) <= margin

    cap = int(min(population, 10**9))
    lo, hi = max(start, 1), max(start, 1)
    while not ok(hi):
        if hi >= cap:
            return cap
        hi = min(cap, hi * 2)
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass
class Component:
    """One site inside a stratum, with the bits the stratum covers there."""

    site: dict[str, Any]
    bits: list[int]
    cells: int
    faults: float = 0.0
    """Distinct faults of this site (``inf`` for continuous values and bit-error rates)."""


@dataclass
class Stratum:
    key: str
    workload: str
    dtype: str
    layer: str
    bit: int | None
    components: list[Component] = field(default_factory=list)
    population: float = 0.0
    """Number of distinct faults (``inf`` in bit-error-rate mode and for continuous values)."""
    weight: float = 0.0
    """The stratum's weight in campaign-level figures: its fault-space size (its elements when
    that is not finite)."""
    frame: float = math.inf
    """Faults the planner enumerates without replacement (``population`` for an exhaustive
    model, else ``inf``: trials are independent draws and never exhaust the stratum)."""

    @property
    def cells(self) -> int:
        return sum(c.cells for c in self.components)


def _draw_context(params: FaultParams, site: dict[str, Any], bits: list[int]) -> DrawContext:
    fmt = ElementFormat(site["width"], site["floating"], site["torch_dtype"], site["zero_pattern"])
    return DrawContext(fmt, tuple(bits), params.bit_count, tuple(site["value_range"]))  # type: ignore[arg-type]


def site_bits(params: FaultParams, site: dict[str, Any], dtype: str) -> list[int]:
    width = int(site["width"])
    return [b for b in params.bits_for(dtype) if b < width]


def strata(params: FaultParams, meta: dict[str, Any]) -> list[Stratum]:
    """The strata of a campaign (workload always; then ``faults.stratify``), in a fixed order."""
    model = FAULT_MODELS.get(params.fault_model).impl()
    by_bit = model.per_bit and "bit" in params.stratify and params.ber is None
    by_layer = "layer" in params.stratify
    # one BER trial flips bits across all of its stratum's tensors: they must share a format
    by_dtype = "dtype" in params.stratify or params.ber is not None
    out: dict[str, Stratum] = {}
    for wl in meta["workloads"]:
        for dtype in params.dtypes:
            for site in wl["sites"][dtype]:
                bits = site_bits(params, site, dtype)
                groups: list[int | None] = list(bits) if by_bit else [None]
                for bit in groups:
                    layer = site["name"] if by_layer else "*"
                    d = dtype if by_dtype else "*"
                    key = f"{wl['name']}|{d}|{layer}|{'*' if bit is None else bit}"
                    st = out.setdefault(key, Stratum(key, wl["name"], d, layer, bit))
                    comp_bits = [bit] if bit is not None else bits
                    cells = site["numel"] * (
                        len(comp_bits) if model.per_bit and params.ber is None else 1
                    )
                    st.components.append(Component({**site, "dtype": dtype}, comp_bits, cells))
    for st in out.values():
        if params.ber is not None:
            st.population = math.inf
            for c in st.components:
                c.faults = math.inf
            st.weight = float(sum(c.site["numel"] * len(c.bits) for c in st.components))
            continue
        if model.per_bit:
            for c in st.components:
                c.faults = float(c.cells)
            st.population = float(st.cells)
        else:
            for c in st.components:
                c.faults = c.cells * model.choices(_draw_context(params, c.site, c.bits))
            st.population = float(sum(c.faults for c in st.components))
        st.weight = st.population if math.isfinite(st.population) else float(st.cells)
        st.frame = st.population if model.exhaustive else math.inf
    return list(out.values())


def _seed(*parts: Any) -> int:
    text = "|".join(str(p) for p in parts)
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


@functools.lru_cache(maxsize=256)
def _permutation(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)


def _cell(seed: int, cells: int, ordinal: int) -> int:
    if cells <= PERMUTATION_LIMIT:
        return int(_permutation(seed, cells)[ordinal % cells])
    return int(np.random.default_rng([seed, ordinal]).integers(cells))


def make_trial(
    params: FaultParams, spec_seed: int, st: Stratum, ordinal: int, round_index: int,
    model: FaultModel,
) -> dict[str, Any]:
    """Trial ``ordinal`` of stratum ``st``: which element(s), which bit(s), the seed."""
    seed = _seed(spec_seed, st.key, ordinal)
    rng = np.random.default_rng(seed)
    faults: list[dict[str, Any]] = []
    if params.ber is not None:
        total_bits = sum(c.site["numel"] * len(c.bits) for c in st.components)
        count = int(rng.binomial(total_bits, params.ber))
        if count > params.max_faults_per_trial:
            raise SpecError(
                "faults.ber",
                f"{params.ber} over {total_bits} bits draws {count} faults per trial, above "
                f"faults.max_faults_per_trial={params.max_faults_per_trial}",
            )
        positions: list[int] = (
            rng.choice(total_bits, size=count, replace=False).tolist() if count else []
        )
        for pos in sorted(int(p) for p in positions):
            for c in st.components:
                span = c.site["numel"] * len(c.bits)
                if pos < span:
                    idx, b = divmod(pos, len(c.bits))
                    faults.append({"site": c.site["name"], "index": idx, "bits": [c.bits[b]]})
                    break
                pos -= span
        dtype = st.components[0].site["dtype"] if st.components else params.dtypes[0]
    else:
        cell = _cell(_seed(spec_seed, st.key, "cells"), st.cells, ordinal)
        for c in st.components:
            if cell < c.cells:
                break
            cell -= c.cells
        per_bit = model.per_bit
        if per_bit:
            idx, b = divmod(cell, len(c.bits))
            bit: int | None = c.bits[b]
        else:
            idx, bit = cell, None
        fault = {"site": c.site["name"], "index": int(idx)}
        fault.update(model.draw(rng, _draw_context(params, c.site, c.bits), bit))
        faults.append(fault)
        dtype = c.site["dtype"]
    return {
        "workload": st.workload,
        "dtype": dtype,
        "target": params.target,
        "fault_model": params.fault_model,
        "stratum": st.key,
        "layer": st.layer,
        "bit": st.bit,
        "faults": faults,
        "seed": seed,
        "round": round_index,
        "ordinal": ordinal,
    }


def failure(result: dict[str, Any], stop_on: str) -> bool:
    """Whether a (baseline) trial result counts as a failure for the stopping rule."""
    outcome = result.get("outcome")
    if stop_on == "sdc":
        return outcome in ("sdc", "critical_sdc")
    return bool(outcome == stop_on)


def plan_round(
    params: FaultParams, spec_seed: int, meta: dict[str, Any], round_index: int,
    previous: list[tuple[dict[str, Any], dict[str, Any]]], max_trials: int,
) -> list[dict[str, Any]]:
    """The trials of one planning round (``[]`` ends the campaign)."""
    model = FAULT_MODELS.get(params.fault_model).impl()
    all_strata = strata(params, meta)
    z = two_sided_z(params.confidence)
    plan: list[tuple[Stratum, int, int]] = []  # (stratum, first ordinal, count)
    if params.sampling == "uniform":
        if round_index > 0:
            return []
        plan = _uniform(params, spec_seed, all_strata)
    else:
        done: dict[str, list[bool]] = {}
        for trial, result in previous:
            done.setdefault(trial["stratum"], []).append(failure(result, params.stop_on))
        cap_each = params.trials or math.inf
        if params.sampling == "adaptive" and params.margin_scope != "stratum" and round_index > 0:
            if round_index < params.max_rounds:
                plan = _grouped_round(params, all_strata, done, z, cap_each)
            all_strata = []
        for st in all_strata:
            limit = min(st.population, cap_each, 10**9)
            n = len(done.get(st.key, []))
            if params.sampling == "stratified":
                if round_index == 0:
                    want = leveugle_sample_size(
                        st.frame, params.margin, params.confidence, params.expected_rate
                    )
                    plan.append((st, 0, int(min(want, limit))))
                continue
            if round_index == 0:
                plan.append((st, 0, int(min(params.pilot_trials, limit))))
                continue
            if round_index >= params.max_rounds or n >= limit:
                continue
            k = sum(done.get(st.key, []))
            _, lo, hi = stratum_interval(st.frame, n, k, z)
            if (hi - lo) / 2.0 <= params.margin:
                continue
            needed = trials_for_margin(k / n if n else 0.5, params.margin, z, st.frame, n)
            step = max(needed - n, max(4, params.pilot_trials // 4))
            step = min(step, max(n, params.pilot_trials), int(limit - n))
            if step > 0:
                plan.append((st, n, step))
    total = sum(count for _, _, count in plan)
    if total > max_trials:
        raise SpecError(
            "execution.max_trials",
            f"round {round_index} plans {total} trials, above the limit {max_trials}; "
            "widen faults.margin, narrow faults.layers/bits or raise execution.max_trials",
        )
    trials = []
    for st, first, count in plan:
        for j in range(first, first + count):
            trials.append(make_trial(params, spec_seed, st, j, round_index, model))
    return trials


def scope_key(st: Stratum, scope: str) -> str:
    """The group whose CI ``margin`` bounds (``faults.margin_scope``)."""
    if scope == "workload":
        return st.workload
    return f"{st.workload}|{st.dtype}|{st.layer}"


def _grouped_round(
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


def _uniform(
    params: FaultParams, spec_seed: int, all_strata: list[Stratum]
) -> list[tuple[Stratum, int, int]]:
    """PyTorchFI-style plan: ``trials`` faults uniform over the whole fault space, booked
    to the strata they fall in (ordinals continue each stratum's permutation)."""
    sizes = np.array([st.cells for st in all_strata], dtype=np.float64)
    rng = np.random.default_rng(_seed(spec_seed, "uniform"))
    counts = rng.multinomial(int(params.trials or 0), sizes / sizes.sum())
    out = []
    for st, c in zip(all_strata, counts, strict=True):
        c = int(min(c, st.cells)) if params.ber is None else int(c)
        if c:
            out.append((st, 0, c))
    return out
