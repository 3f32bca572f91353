"""Statistical fault injection: strata, sample sizes and the trials of each planning round.

* Sample size of a stratum with ``N`` faults for margin ``e`` at two-sided quantile ``t`` and
  expected proportion ``p`` — Leveugle, Calvez, Maistri, Vanhauwaert, "Statistical Fault
  Injection: Quantified Error and Confidence", DATE 2009:
  ``n = N / (1 + e² (N − 1) / (t² p (1 − p)))``.
* Adaptive mode (the iterative variant): a pilot round per stratum, then rounds that re-plan
  each unfinished stratum with its observed proportion, until its Wilson interval (Wilson 1927)
  half-width times the finite-population correction ``sqrt((N − n)/(N − 1))`` is ≤ ``e``.

Faults are drawn without replacement inside a stratum (a seeded permutation of its cells,
:mod:`faultlab.workers.faults.cells`: constant memory at any size), so the rounds of an adaptive
campaign never repeat a cell. An exhausted stratum is exact only for
an exhaustive fault model (single bit, zero); a model that draws a value or bits per trial
samples with replacement (``Stratum.frame`` is infinite).
Everything here is deterministic in (spec, meta, previous records): recovery re-plans.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faultlab.errors import SpecError
from faultlab.stats import two_sided_z, wilson_half_width
from faultlab.workers.faults.allocation import grouped_round, uniform_round
from faultlab.workers.faults.cells import cell_at
from faultlab.workers.faults.estimates import fpc, stratum_interval
from faultlab.workers.faults.models import FAULT_MODELS, DrawContext, ElementFormat, FaultModel
from faultlab.workers.faults.params import FaultParams


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
    inputs: int = 0
    """Per-input activation faults (``activation_position: per_input``): the evaluated inputs,
    each given its own position; 0 = one position for every input."""


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
    target: str = ""
    """The fault target of every site of the stratum (``faults.target``; one per stratum)."""

    @property
    def cells(self) -> int:
        return sum(c.cells for c in self.components)


def _draw_context(params: FaultParams, site: dict[str, Any], bits: list[int]) -> DrawContext:
    fmt = ElementFormat(site["width"], site["floating"], site["torch_dtype"], site["zero_pattern"])
    return DrawContext(fmt, tuple(bits), params.bit_count, tuple(site["value_range"]))  # type: ignore[arg-type]


def site_bits(params: FaultParams, site: dict[str, Any], dtype: str) -> list[int]:
    width = int(site["width"])
    return [b for b in params.bits_for(dtype, site.get("target")) if b < width]


def per_input_count(params: FaultParams, workload: dict[str, Any], site: dict[str, Any]) -> int:
    """Inputs that get their own position in a fault of ``site`` (0: one shared position):
    image activation sites under ``activation_position: per_input``."""
    if (params.activation_position == "per_input" and site.get("target") == "activation"
            and workload.get("kind") == "image"):
        return int(workload["inputs"])
    return 0


def strata(params: FaultParams, meta: dict[str, Any]) -> list[Stratum]:
    """The strata of a campaign (workload always; the target of a multi-target campaign; then
    ``faults.stratify``), in a fixed order."""
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
                target = str(site.get("target", params.targets[0]))
                # single-target keys are unchanged (their plans stay those of earlier versions)
                prefix = f"{wl['name']}|{target}" if params.multi_target else wl["name"]
                for bit in groups:
                    layer = site["name"] if by_layer else "*"
                    d = dtype if by_dtype else "*"
                    key = f"{prefix}|{d}|{layer}|{'*' if bit is None else bit}"
                    st = out.setdefault(key, Stratum(key, wl["name"], d, layer, bit,
                                                     target=target))
                    comp_bits = [bit] if bit is not None else bits
                    cells = site["numel"] * (
                        len(comp_bits) if model.per_bit and params.ber is None else 1
                    )
                    st.components.append(Component({**site, "dtype": dtype}, comp_bits, cells,
                                                   inputs=per_input_count(params, wl, site)))
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
        # per-input positions are fresh draws: such trials never enumerate the stratum
        exhaustive = model.exhaustive and not any(c.inputs for c in st.components)
        st.frame = st.population if exhaustive else math.inf
    return list(out.values())


def _seed(*parts: Any) -> int:
    text = "|".join(str(p) for p in parts)
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


def _input_positions(rng: np.random.Generator, c: Component, first: int) -> list[int]:
    """Per-input activation faults: input 0 at the stratum's cell ``first``, every other
    input at its own uniform draw over the site's elements (recorded, so replay is exact)."""
    return [first, *(int(i) for i in rng.integers(int(c.site["numel"]), size=c.inputs - 1))]


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
        cell = cell_at(_seed(spec_seed, st.key, "cells"), st.cells, ordinal)
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
        fault: dict[str, Any] = {"site": c.site["name"], "index": int(idx)}
        fault.update(model.draw(rng, _draw_context(params, c.site, c.bits), bit))
        if c.inputs:
            fault["indices"] = _input_positions(rng, c, int(idx))
        faults.append(fault)
        dtype = c.site["dtype"]
    return {
        "workload": st.workload,
        "dtype": dtype,
        "target": st.target or params.targets[0],
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
    return list(iter_round(params, spec_seed, meta, round_index, previous, max_trials))


def iter_round(
    params: FaultParams, spec_seed: int, meta: dict[str, Any], round_index: int,
    previous: list[tuple[dict[str, Any], dict[str, Any]]], max_trials: int,
) -> Iterator[dict[str, Any]]:
    """:func:`plan_round`'s trials, made one at a time (the coordinator never holds a whole
    round of dicts); the round's size is checked before the first one is made."""
    model = FAULT_MODELS.get(params.fault_model).impl()
    allocation = round_allocation(params, spec_seed, meta, round_index, previous, max_trials)
    for st, first, count in allocation:
        for j in range(first, first + count):
            yield make_trial(params, spec_seed, st, j, round_index, model)


def round_allocation(
    params: FaultParams, spec_seed: int, meta: dict[str, Any], round_index: int,
    previous: list[tuple[dict[str, Any], dict[str, Any]]], max_trials: int,
) -> list[tuple[Stratum, int, int]]:
    """``(stratum, first ordinal, count)`` of each stratum the round samples (``[]``: none)."""
    all_strata = strata(params, meta)
    z = two_sided_z(params.confidence)
    plan: list[tuple[Stratum, int, int]] = []  # (stratum, first ordinal, count)
    if params.sampling == "uniform":
        if round_index > 0:
            return []
        plan = uniform_round(params, _seed(spec_seed, "uniform"), all_strata)
    else:
        done: dict[str, list[bool]] = {}
        for trial, result in previous:
            done.setdefault(trial["stratum"], []).append(failure(result, params.stop_on))
        cap_each = params.trials or math.inf
        if params.sampling == "adaptive" and params.margin_scope != "stratum" and round_index > 0:
            if round_index < params.max_rounds:
                plan = grouped_round(params, all_strata, done, z, cap_each)
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
    return plan
