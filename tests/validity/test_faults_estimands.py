"""The fault report's estimands on synthetic campaigns with known truth (issue 12, items 7–12):
stratum-weighted campaign figures, cluster-aware per-node intervals, exactness only for a
truly enumerated stratum, the true fault space, paired mitigation effects."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from faultlab.spec import parse_spec
from faultlab.workers.engine import TrialRecord
from faultlab.workers.faults.engine import FaultEngine
from faultlab.workers.faults.planning import plan_round, strata

Outcome = Callable[[dict[str, Any], np.random.Generator], dict[str, Any]]


def site(name: str, numel: int) -> dict[str, Any]:
    return {"name": name, "module": name, "target": "weight", "tensor": "weight", "call": None,
            "numel": numel, "shape": [numel], "width": 32, "floating": True,
            "torch_dtype": "float32", "value_range": [-1.0, 1.0], "zero_pattern": 0}


def meta_of(sizes: dict[str, int], graph_nodes: list[int] | None = None) -> dict[str, Any]:
    wl = {"name": "w", "model": "m", "dataset": "d", "kind": "graph" if graph_nodes else "image",
          "model_digest": "m", "dataset_digest": "d", "inputs": 100,
          "golden_accuracy": {"fp32": 0.9},
          "sites": {"fp32": [site(n, k) for n, k in sizes.items()]},
          "degree_counts": graph_nodes or []}
    return {"model_digest": "m", "dataset_digest": "d", "workloads": [wl]}


def campaign(faults: dict[str, Any], meta: dict[str, Any], outcome: Outcome,
             seed: int = 0) -> Any:
    """Plans round 0 with the real planner, gives every trial the synthetic ``outcome`` and
    aggregates with the real engine."""
    spec = parse_spec({"kind": "faults", "seed": seed, "faults": faults})
    trials = plan_round(spec.params, spec.seed, meta, 0, [], 10**6)
    rng = np.random.default_rng(seed)
    records = [TrialRecord(str(i), t, outcome(t, rng)) for i, t in enumerate(trials)]
    return FaultEngine().aggregate(spec, meta, records)


def result(failed: bool, accuracy: float, inputs: int = 100, hit: int | None = None,
           **extra: Any) -> dict[str, Any]:
    hit = (inputs if failed else 0) if hit is None else hit
    return {"outcome": "critical_sdc" if failed else "masked", "accuracy": accuracy,
            "inputs": inputs, "sdc_inputs": hit, "critical_inputs": hit, **extra}


def test_accuracy_under_fault_is_stratum_weighted() -> None:
    """Layer ``big`` holds 99 % of the fault space, ``small`` 1 %; equal trials per stratum.
    The campaign's accuracy under fault is the weighted 0.9·0.99 + 0.1·0.01, not 0.5."""
    meta = meta_of({"big": 9900, "small": 100})
    faults = {"sampling": "stratified", "stratify": ["layer"], "bits": [31], "trials": 40}
    report = campaign(faults, meta, lambda t, _: result(t["layer"] == "small",
                                                        0.1 if t["layer"] == "small" else 0.9))
    truth = 0.9 * 0.99 + 0.1 * 0.01
    assert report.summary["mean_accuracy_under_fault"] == pytest.approx(truth)
    row = report.tables["per_model"].iloc[0]
    assert row["mean_accuracy"] == pytest.approx(truth)
    assert row["critical_sdc_rate"] == pytest.approx(0.01)
    assert row["per_input_critical_sdc_rate"] == pytest.approx(0.01)


def test_per_degree_rates_are_weighted_and_cluster_aware() -> None:
    """Every node of a trial flips together (one cluster): the by-degree interval must be as
    wide as the trial-level one, not a Wilson interval over nodes × trials; and the rate is
    weighted by the strata's fault-space sizes."""
    meta = meta_of({"big": 9000, "small": 1000}, graph_nodes=[400])
    faults = {"sampling": "stratified", "stratify": ["layer"], "bits": [31], "trials": 60}

    def outcome(t: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        failed = bool(rng.random() < (0.5 if t["layer"] == "small" else 0.1))
        hit = 400 if failed else 0
        return result(failed, 0.5, inputs=400, hit=hit, critical_by_degree=[hit],
                      sdc_by_degree=[hit], nodes_affected=hit)

    report = campaign(faults, meta, outcome)
    deg = report.tables["by_degree"].iloc[0]
    model = report.tables["per_model"].iloc[0]
    assert deg["critical_sdc_rate"] == pytest.approx(model["critical_sdc_rate"])
    width = deg["critical_sdc_ci_high"] - deg["critical_sdc_ci_low"]
    trial_width = model["critical_sdc_ci_high"] - model["critical_sdc_ci_low"]
    assert width >= 0.8 * trial_width
    node = model["per_input_critical_sdc_ci_high"] - model["per_input_critical_sdc_ci_low"]
    assert node >= 0.8 * trial_width


@pytest.mark.parametrize("fault_model,numel,trials", [
    ("random_value", 30, 30),       # a continuous value: no finite fault space at all
    ("multi_bitflip", 1, 496),      # 1 element × C(32, 2) pairs of bits
    ("adjacent_bitflip", 1, 31),    # 1 element × 31 windows of 2 bits
])
def test_exhausting_a_random_fault_model_is_not_exact(
    fault_model: str, numel: int, trials: int
) -> None:
    """As many trials as the stratum has faults (or elements): the planner permutes elements
    only and draws the value / bits afresh each trial, so nothing was enumerated and the rate
    is an estimate with a real interval, not an exact census."""
    meta = meta_of({"tiny": numel})
    faults = {"sampling": "stratified", "stratify": ["layer"], "fault_model": fault_model,
              "bit_count": 2, "trials": trials, "margin": 0.001}
    report = campaign(faults, meta, lambda _t, rng: result(bool(rng.random() < 0.3), 0.5))
    row = report.tables["per_layer"].iloc[0]
    assert row["trials"] == trials
    assert row["critical_sdc_ci_high"] - row["critical_sdc_ci_low"] > 0.05
    (st,) = strata(parse_spec({"kind": "faults", "faults": faults}).params, meta)
    assert math.isinf(st.frame)
    if fault_model == "random_value":
        assert report.summary["population"] is None  # a continuous value


def test_enumerated_single_bit_stratum_stays_exact() -> None:
    meta = meta_of({"tiny": 30})
    faults = {"sampling": "stratified", "stratify": ["layer", "bit"], "bits": [31],
              "trials": 30, "margin": 0.001}
    report = campaign(faults, meta, lambda t, _: result(t["faults"][0]["index"] < 9, 0.5))
    row = report.tables["per_layer"].iloc[0]
    assert row["critical_sdc_rate"] == row["critical_sdc_ci_low"] == row["critical_sdc_ci_high"]
    assert row["critical_sdc_rate"] == pytest.approx(0.3)


def test_population_is_the_true_fault_space_with_the_sampled_fraction() -> None:
    """A uniform campaign of 50 trials over 19 408 fp32 weights × 32 bits leaves most (layer,
    bit) strata unsampled; the model's fault space is still 621 056."""
    meta = meta_of({"a": 19_000, "b": 400, "c": 8})
    faults = {"sampling": "uniform", "stratify": ["layer", "bit"], "trials": 50}
    report = campaign(faults, meta, lambda _t, rng: result(bool(rng.random() < 0.2), 0.5))
    assert report.summary["population"] == 19_408 * 32
    assert report.summary["sampled_fraction"] == pytest.approx(50 / (19_408 * 32))
    layers = report.tables["per_layer"].set_index("layer")
    for name, numel in {"a": 19_000, "b": 400}.items():
        if name in layers.index:
            assert layers.loc[name, "population"] == numel * 32


def test_mitigation_effects_carry_paired_intervals_and_mcnemar() -> None:
    meta = meta_of({"a": 5000})
    faults = {"sampling": "stratified", "stratify": ["layer"], "bits": [31], "trials": 1,
              "mitigations": [{"name": "ranger"}]}

    def fixed_by_ranger(_t: dict[str, Any], _rng: np.random.Generator) -> dict[str, Any]:
        return {**result(True, 0.1), "mitigated": {"ranger": result(False, 0.9)}}

    mit = campaign(faults, meta, fixed_by_ranger).tables["mitigation"].iloc[0]
    assert mit["failure_reduction"] == 1.0
    assert mit["failure_difference"] == -1.0
    assert mit["failure_difference_ci_low"] == -1.0 and mit["failure_difference_ci_high"] > 0
    assert mit["failure_mcnemar_p"] == 1.0  # one discordant pair proves nothing

    faults["trials"] = 60
    mit = campaign(faults, meta, fixed_by_ranger).tables["mitigation"].iloc[0]
    assert mit["failure_difference_ci_high"] < -0.9
    assert mit["failure_mcnemar_p"] == pytest.approx(2 * 0.5**60)
    assert mit["trials_fixed"] == 60 and mit["trials_broken"] == 0
