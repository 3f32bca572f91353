"""The sampling statistics of fault campaigns and the ``faults:`` spec section's errors (the
fault models' bit-level behaviour: ``tests/workers/faults/test_fault_models.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.stats import wilson_interval
from faultlab.workers.faults.models import FAULT_MODELS
from faultlab.workers.faults.planning import (
    fpc,
    leveugle_sample_size,
    trials_for_margin,
    wilson_half_width,
)


def test_leveugle_sample_sizes() -> None:
    assert leveugle_sample_size(math.inf, 0.01, 0.95) == 9604
    assert leveugle_sample_size(10**12, 0.01, 0.95) == 9604
    assert leveugle_sample_size(10**12, 0.01, 0.99) == 16588  # two-sided 2.5758
    assert leveugle_sample_size(1000, 0.05, 0.95) == 278
    assert leveugle_sample_size(100, 0.01, 0.95) == 99  # FPC: close to the whole population
    assert leveugle_sample_size(10**9, 0.05, 0.95, p=0.1) == 139


def test_wilson_half_width_and_fpc() -> None:
    for k, n in [(0, 10), (3, 50), (25, 50), (99, 100)]:
        lo, hi = wilson_interval(k, n)
        assert wilson_half_width(k, n, 1.959964) == pytest.approx((hi - lo) / 2, rel=1e-4)
    assert fpc(100, 100) == 0.0
    assert fpc(math.inf, 10) == 1.0
    # zero failures need far fewer trials than the worst case for ±1 %
    n0 = trials_for_margin(0.0, 0.01, 1.959964, math.inf, 1)
    assert 180 <= n0 <= 200
    assert trials_for_margin(0.5, 0.01, 1.959964, math.inf, 1) in range(9590, 9610)


def _spec(**faults: object) -> dict:
    return {"kind": "faults", "faults": faults}


@pytest.mark.parametrize(
    "faults,field",
    [
        ({"bits": [32]}, "faults.bits"),
        ({"dtypes": ["fp16"], "bits": [16]}, "faults.bits"),
        ({"dtypes": ["int8"], "bits": [8]}, "faults.bits"),
        ({"ber": 0.0}, "faults.ber"),
        ({"ber": 1.0}, "faults.ber"),
        ({"ber": -1e-3}, "faults.ber"),
        ({"margin": 0.0}, "faults.margin"),
        ({"margin": -0.1}, "faults.margin"),
        ({"fault_model": "cosmic_ray"}, "faults.fault_model"),
        ({"target": "kernel"}, "faults.target"),
        ({"dtypes": ["fp8"]}, "faults.dtypes.0"),
        ({"sampling": "uniform"}, "faults.trials"),
        ({"mitigations": [{"name": "tmr"}]}, "faults.mitigations.0.name"),
        ({"confidence": 1.0}, "faults.confidence"),
        ({"bit_count": 40, "fault_model": "multi_bitflip"}, "faults.bit_count"),
        ({"ber": 1e-3, "bits": [3]}, "faults.ber"),
        ({"unknown": 1}, "faults.unknown"),
    ],
)
def test_bad_fault_sections_name_the_field(faults: dict, field: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(_spec(**faults))
    assert err.value.field == field, str(err.value)


def test_ber_draws_a_binomial_number_of_faults() -> None:
    from faultlab.workers.faults.params import FaultParams
    from faultlab.workers.faults.planning import make_trial, strata

    site = {"name": "w", "module": "m", "target": "weight", "tensor": "weight", "call": None,
            "numel": 1000, "shape": [1000], "width": 32, "floating": True,
            "torch_dtype": "float32", "value_range": [-1.0, 1.0], "zero_pattern": 0}
    meta = {"workloads": [{"name": "w", "sites": {"fp32": [site]}}]}
    params = FaultParams(ber=1e-4, stratify=["layer"])
    (st,) = strata(params, meta)
    counts = [len(make_trial(params, 0, st, j, 0, FAULT_MODELS.get("bitflip").impl())["faults"])
              for j in range(400)]
    # Binomial(32000, 1e-4): mean 3.2, variance ≈ 3.2
    assert np.mean(counts) == pytest.approx(3.2, abs=0.35)
    assert np.var(counts) == pytest.approx(3.2, abs=0.8)
