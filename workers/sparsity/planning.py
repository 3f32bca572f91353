"""Sweep planning: which cells a sparsity campaign runs, each as a self-contained trial.

A *cell* trial holds the transform chain of every pruning step (one step for one-shot, ``n``
steps for the cubic schedule), the fine-tuning after each step, and the seed — everything
needed to replay it. Sensitivity trials prune one layer (or one coupled channel group) at one
level. Allocation trials (planned in round 1, from the sensitivity records) compare a
sensitivity-derived per-layer allocation with uniform and global allocations. Fault trials
(composition) are the fault engine's trials, planned once on the dense model and copied to
every compressed variant (see :mod:`faultlab.workers.sparsity.compose`).

Everything here is pure (no torch) and deterministic in its inputs.
"""

from __future__ import annotations

from typing import Any

from faultlab.workers.sparsity.params import (
    PRUNING_METHODS,
    STRUCTURED,
    SparsityParams,
)

Step = list[dict[str, Any]]


def cubic_schedule(initial: float, final: float, steps: int) -> list[float]:
    """Zhu & Gupta (2017): ``s_t = s_f + (s_i − s_f)(1 − t/n)³`` for ``t = 1..n``."""
    return [round(final + (initial - final) * (1.0 - t / steps) ** 3, 6)
            for t in range(1, steps + 1)]


def pruning_transform(method: str, granularity: str, level: float, **extra: Any) -> dict[str, Any]:
    """The transform (name, params) of one pruning method at one level."""
    if method == "magnitude":
        name = "global_magnitude" if granularity == "global" else "magnitude"
        return {"name": name, "params": {"sparsity": level, **extra}}
    if method in ("random", "gradient"):
        params: dict[str, Any] = {"sparsity": level, "scope": granularity, **extra}
        return {"name": PRUNING_METHODS[method], "params": params}
    if method in STRUCTURED:
        return {"name": method, "params": {"sparsity": level, "scope": granularity, **extra}}
    raise ValueError(f"no level-driven transform for {method!r}")


def _extra(method: str, params: SparsityParams) -> dict[str, Any]:
    return {"samples": params.calibration_samples} if method == "gradient" else {}


def pruning_steps(
    method: str, granularity: str, schedule: str, level: float, params: SparsityParams
) -> list[Step]:
    """The transform chain of each pruning step of a cell."""
    extra = _extra(method, params)
    if schedule == "one_shot":
        return [[pruning_transform(method, granularity, level, **extra)]]
    targets = cubic_schedule(params.gradual.initial_sparsity, level, params.gradual.steps)
    steps: list[Step] = []
    if method in STRUCTURED:
        # Each structured step removes a fraction of the channels *left*: to reach a
        # cumulative fraction s_t, prune 1 − (1 − s_t)/(1 − s_{t−1}) of what remains.
        done = 0.0
        for target in targets:
            step_ratio = 1.0 - (1.0 - target) / (1.0 - done) if target > done else 0.0
            steps.append([pruning_transform(method, granularity, round(step_ratio, 6), **extra)])
            done = max(done, target)
        return steps
    return [[pruning_transform(method, granularity, t, **extra)] for t in targets]


def _cell(
    family: str, method: str, granularity: str, schedule: str, level: float | None, level_kind: str,
    seed: int, steps: list[Step], epochs: float, params: SparsityParams, **more: Any,
) -> dict[str, Any]:
    per_step = epochs / len(steps) if steps else 0.0
    return {
        "type": "cell",
        "family": family,
        "method": method,
        "granularity": granularity,
        "schedule": schedule,
        "level": level,
        "level_kind": level_kind,
        "seed": seed,
        "steps": steps,
        "finetune": {
            "epochs_per_step": round(per_step, 6),
            "lr": params.finetune.lr,
            "batch_size": params.finetune.batch_size,
        },
        **more,
    }


def seeds_of(params: SparsityParams, spec_seed: int) -> list[int]:
    return [spec_seed + i for i in range(params.seeds)]


def sweep_cells(params: SparsityParams, spec_seed: int) -> list[dict[str, Any]]:
    """Every cell of the sweep: method × granularity × schedule × level × seed, plus the
    random and global-magnitude baselines, N:M patterns, quantization, low-rank, distillation
    and chain cells."""
    seeds = seeds_of(params, spec_seed)
    return [
        *_pruning_cells(params, seeds),
        *_quantization_cells(params, seeds),
        *_low_rank_and_distillation_cells(params, seeds),
        *_chain_cells(params, seeds),
    ]


def _pruning_cells(params: SparsityParams, seeds: list[int]) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    budget = params.finetune.epochs
    levels = params.levels.resolved()
    combos: list[tuple[str, str]] = []
    for method in params.swept_methods():
        if method == "nm":
            continue
        grans = list(params.granularities)
        if method == "magnitude" and "global" not in grans:
            grans.append("global")  # the global-magnitude baseline is always included
        combos += [(method, g) for g in grans]
    for method, granularity in combos:
        structured = method in STRUCTURED
        for schedule in params.schedules:
            for level in levels:
                for seed in seeds:
                    cells.append(_cell(
                        "prune", method, granularity, schedule, level,
                        "channels" if structured else "sparsity", seed,
                        pruning_steps(method, granularity, schedule, level, params), budget,
                        params, structured=structured,
                    ))
    if budget > 0:
        # the dense model with the same fine-tuning budget: the baseline a fine-tuned pruned
        # cell has to beat (the untuned dense row stays the reference of the sparsity metrics)
        for seed in seeds:
            cells.append(_cell("baseline", "dense_finetuned", "-", "one_shot", 0.0, "sparsity",
                               seed, [[]], budget, params))
    if "nm" in params.methods:
        for pattern in params.nm:
            for seed in seeds:
                steps = [[{"name": "nm", "params": {"n": pattern.n, "m": pattern.m}}]]
                cells.append(_cell(
                    "prune", "nm", f"{pattern.n}:{pattern.m}", "one_shot",
                    round(1.0 - pattern.n / pattern.m, 6), "sparsity", seed, steps, budget,
                    params, nm_m=pattern.m,
                ))
    return cells


def _quantization_cells(params: SparsityParams, seeds: list[int]) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    for mode in params.quantization.int8:
        extra = {"samples": params.calibration_samples} if mode == "static" else {}
        for seed in seeds:
            steps = [[{"name": f"int8_{mode}", "params": extra}]]
            cells.append(_cell("quant", f"int8_{mode}", "-", "one_shot", 8, "bits", seed, steps,
                               0.0, params))
    for bits in params.quantization.bits:
        for seed in seeds:
            steps = [[{"name": "fake_quant", "params": {"bits": bits}}]]
            cells.append(_cell(
                "quant", "fake_quant", "-", "one_shot", bits, "bits", seed, steps, 0.0, params,
                weight_bits=bits,
            ))
    return cells


def _low_rank_and_distillation_cells(
    params: SparsityParams, seeds: list[int]
) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    for ratio in params.low_rank.rank_ratios:
        for seed in seeds:
            steps = [[{"name": "low_rank", "params": {"rank_ratio": ratio}}]]
            cells.append(_cell("low_rank", "low_rank", "-", "one_shot", ratio, "rank_ratio", seed,
                               steps, params.finetune.epochs, params))
    dist = params.distillation
    for ratio in dist.width_ratios:
        for seed in seeds:
            d_params: dict[str, Any] = {
                "width_ratio": ratio, "init": dist.init, "epochs": dist.epochs,
                "temperature": dist.temperature, "alpha": dist.alpha, "lr": dist.lr,
                "batch_size": params.finetune.batch_size,
            }
            if dist.student is not None:
                d_params.update(student=dist.student, student_options=dict(dist.student_options))
            steps = [[{"name": "distill", "params": d_params}]]
            cells.append(_cell("distill", "distill", "-", "one_shot", ratio, "width_ratio", seed,
                               steps, 0.0, params))
    return cells


def _chain_cells(params: SparsityParams, seeds: list[int]) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    for chain in params.chains:
        bits = next((int(t.params["bits"]) for t in chain.transforms
                     if t.name == "fake_quant" and "bits" in t.params), None)
        nm_m = next((int(t.params.get("m", 4)) for t in chain.transforms if t.name == "nm"), None)
        more: dict[str, Any] = {}
        if bits is not None:
            more["weight_bits"] = bits
        if nm_m is not None:
            more["nm_m"] = nm_m
        for seed in seeds:
            steps = [[t.model_dump(mode="json") for t in chain.transforms]]
            cells.append(_cell("chain", f"chain:{chain.name}", "-", "one_shot", None, "-", seed,
                               steps, 0.0, params, **more))
    return cells


def sensitivity_trials(
    params: SparsityParams, spec_seed: int, targets: list[str]
) -> list[dict[str, Any]]:
    """One trial per (target layer or channel group, level): that target alone pruned."""
    scan = params.sensitivity
    if scan is None:
        return []
    extra = _extra(scan.method, params)
    trials = []
    for target in targets:
        for level in scan.levels:
            transform = pruning_transform(scan.method, "layer", level, layers=[target], **extra)
            trials.append({
                "type": "sensitivity", "method": scan.method, "target": target, "level": level,
                "seed": spec_seed, "transform": transform, "split": "validation",
            })
    return trials


def allowed_level(curve: list[tuple[float, float]], tolerance: float) -> float:
    """Largest level whose (linearly interpolated) accuracy drop stays ≤ ``tolerance``.

    ``curve`` is ``[(level, drop)]`` with the dense point ``(0, 0)`` first, ascending levels.
    """
    best = 0.0
    for (l0, d0), (l1, d1) in zip(curve, curve[1:], strict=False):
        if d1 <= tolerance:
            best = l1
            continue
        if d0 <= tolerance < d1:
            best = l0 + (l1 - l0) * (tolerance - d0) / (d1 - d0)
        break
    return best


def sensitivity_allocation(
    curves: dict[str, list[tuple[float, float]]], sizes: dict[str, float], target: float
) -> dict[str, float]:
    """Per-layer levels from sensitivity curves for an overall size-weighted ``target``.

    Each layer gets the largest level whose single-layer accuracy drop is within a common
    tolerance ``δ`` (the sensitivity-threshold rule of Han et al., NeurIPS 2015, and of NNI's
    and Distiller's sensitivity pruners); ``δ`` is found by bisection so that the
    size-weighted mean level reaches ``target``, and the allocation is then scaled by
    ``target / reached`` so it is met exactly (levels capped just below 1).
    """
    names = sorted(curves)
    total = sum(sizes[n] for n in names) or 1.0

    def levels_at(tol: float) -> dict[str, float]:
        return {n: allowed_level(curves[n], tol) for n in names}

    def overall(levels: dict[str, float]) -> float:
        return sum(sizes[n] * levels[n] for n in names) / total

    max_drop = max((d for n in names for _, d in curves[n]), default=0.0)
    lo, hi = -1e-9, max(max_drop, 0.0) + 1e-9
    if overall(levels_at(hi)) < target:
        chosen = levels_at(hi)
    else:
        for _ in range(60):
            mid = (lo + hi) / 2
            if overall(levels_at(mid)) >= target:
                hi = mid
            else:
                lo = mid
        chosen = levels_at(hi)
    reached = overall(chosen)
    if reached <= 0:
        return {n: round(target, 6) for n in names}
    scale = target / reached
    return {n: round(min(chosen[n] * scale, 0.99), 6) for n in names}


def allocation_cells(
    params: SparsityParams, spec_seed: int, meta: dict[str, Any],
    sensitivity: list[tuple[dict[str, Any], dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Round 1: sensitivity-derived vs uniform vs global allocation at each target level.

    The allocation is selected from drops measured on the validation split
    (``meta["selection"]``, see :mod:`.selection`), never on the test split the cells are then
    evaluated on."""
    scan = params.sensitivity
    if scan is None or not scan.allocation_levels or not sensitivity:
        return []
    dense = float(meta["selection"]["dense_accuracy"])
    by_target: dict[str, dict[float, list[float]]] = {}
    for trial, result in sensitivity:
        if result.get("accuracy") is None:
            continue
        by_target.setdefault(trial["target"], {}).setdefault(float(trial["level"]), []).append(
            float(result["accuracy"])
        )
    curves = {
        t: [(0.0, 0.0)] + [(lvl, dense - sum(a) / len(a)) for lvl, a in sorted(levels.items())]
        for t, levels in by_target.items()
    }
    structured = scan.method in STRUCTURED
    sizes_src = meta["groups"] if structured else meta["layers"]
    sizes = {entry["name"]: float(entry["size"]) for entry in sizes_src if entry["name"] in curves}
    curves = {t: c for t, c in curves.items() if t in sizes}
    cells = []
    extra = _extra(scan.method, params)
    if scan.layers is not None:
        extra["layers"] = sorted(curves)  # all three strategies prune the scanned layers only
    for target in scan.allocation_levels:
        per_layer = sensitivity_allocation(curves, sizes, target)
        strategies: list[tuple[str, dict[str, Any]]] = [
            ("sensitivity", pruning_transform(scan.method, "layer", target, **extra,
                                              per_layer=per_layer)),
            ("uniform", pruning_transform(scan.method, "layer", target, **extra)),
            ("global", pruning_transform(scan.method, "global", target, **extra)),
        ]
        for strategy, transform in strategies:
            if strategy == "sensitivity" and structured:
                transform["params"]["sparsity"] = 0.0  # only the listed groups are pruned
            for seed in seeds_of(params, spec_seed):
                cells.append(_cell(
                    "allocation", scan.method, strategy, "one_shot", target,
                    "channels" if structured else "sparsity", seed, [[transform]],
                    params.finetune.epochs, params, structured=structured,
                    allocation=per_layer if strategy == "sensitivity" else None,
                ))
    return cells
