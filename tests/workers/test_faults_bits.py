"""Bit-level correctness of the number formats and fault models, and the sampling statistics."""

from __future__ import annotations

import importlib
import math
import random
import re
import struct

import numpy as np
import pytest
import torch

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.stats import wilson_interval
from faultlab.workers.faults.formats import bits_to_float, float_to_bits, raw_view
from faultlab.workers.faults.models import FAULT_MODELS, ElementFormat, get_fault_model
from faultlab.workers.faults.params import FAULT_MODELS as PARAM_FAULT_MODELS
from faultlab.workers.faults.params import MITIGATIONS as PARAM_MITIGATIONS
from faultlab.workers.faults.planning import (
    fpc,
    leveugle_sample_size,
    trials_for_margin,
    wilson_half_width,
)


def _flip(t: torch.Tensor, bit: int) -> torch.Tensor:
    out = t.clone()
    fmt = ElementFormat(out.element_size() * 8, out.is_floating_point(), str(out.dtype)[6:])
    raw = raw_view(out)
    raw[0] = get_fault_model("bitflip").apply_tensor(raw[0], {"bits": [bit]}, fmt)
    return out


def _fp32_reference(value: float, bit: int) -> float:
    (pattern,) = struct.unpack(">I", struct.pack(">f", value))
    return struct.unpack(">f", struct.pack(">I", pattern ^ (1 << bit)))[0]


def _fp16_reference(value: float, bit: int) -> float:
    (pattern,) = struct.unpack(">H", struct.pack(">e", value))
    return struct.unpack(">e", struct.pack(">H", pattern ^ (1 << bit)))[0]


def _bf16_reference(value: float, bit: int) -> float:
    (pattern,) = struct.unpack(">I", struct.pack(">f", value))  # value is exactly a bf16
    upper = (pattern >> 16) ^ (1 << bit)
    return struct.unpack(">f", struct.pack(">I", upper << 16))[0]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize(
    "dtype,width,reference",
    [(torch.float32, 32, _fp32_reference), (torch.float16, 16, _fp16_reference),
     (torch.bfloat16, 16, _bf16_reference)],
)
def test_float_bit_flips_match_ieee754_struct_layout(dtype, width, reference) -> None:
    rng = random.Random(0)
    values = [0.0, -0.0, 1.0, -2.5, 0.15625, 65504.0 if dtype == torch.float16 else 3.0e4]
    values += [rng.uniform(-8, 8) for _ in range(20)]
    for v in values:
        t = torch.tensor([v], dtype=dtype)
        exact = float(t.item())  # the value as stored in this format
        for bit in range(width):
            got = float(_flip(t, bit).item())
            assert _same(got, reference(exact, bit)), (dtype, exact, bit)
            # a second flip of the same bit restores the stored value bit for bit
            assert torch.equal(raw_view(_flip(_flip(t, bit), bit)), raw_view(t))


def test_int8_flip_is_twos_complement_on_the_stored_integer() -> None:
    for v in range(-128, 128):
        t = torch.tensor([v], dtype=torch.int8)
        for bit in range(8):
            expected = ((v & 0xFF) ^ (1 << bit))
            expected = expected - 256 if expected >= 128 else expected
            assert int(_flip(t, bit).item()) == expected


def test_stuck_at_and_value_models_on_patterns() -> None:
    fmt = ElementFormat(32, True, "float32")
    one = float_to_bits(1.0, torch.float32)  # 0x3F800000
    sa0, sa1 = get_fault_model("stuck_at_0"), get_fault_model("stuck_at_1")
    assert sa0.apply(one, {"bits": [29]}, fmt) == one & ~(1 << 29)
    assert sa0.apply(one, {"bits": [31]}, fmt) == one  # already 0: masked by construction
    assert sa1.apply(one, {"bits": [31]}, fmt) == one | (1 << 31)
    assert bits_to_float(sa1.apply(one, {"bits": [31]}, fmt), torch.float32) == -1.0
    assert get_fault_model("zero").apply(one, {}, fmt) == 0
    assert bits_to_float(get_fault_model("random_value").apply(one, {"value": 0.5}, fmt),
                         torch.float32) == 0.5
    adj = get_fault_model("adjacent_bitflip")
    assert adj.apply(0, {"bits": [3, 4, 5]}, fmt) == 0b111000
    # vectorised form agrees with the scalar form on every model
    t = torch.tensor([1.0, -3.25, 7e-3], dtype=torch.float32)
    for name, fault in [("stuck_at_0", {"bits": [31]}), ("stuck_at_1", {"bits": [30]}),
                        ("multi_bitflip", {"bits": [1, 20, 31]}), ("zero", {}),
                        ("random_value", {"value": -0.75})]:
        model = get_fault_model(name)
        vec = model.apply_tensor(raw_view(t.clone()), fault, fmt)
        for k in range(3):
            p = float_to_bits(float(t[k]), torch.float32)
            assert int(vec[k]) & 0xFFFFFFFF == model.apply(p, fault, fmt), name


def test_registries_match_the_names_the_spec_accepts() -> None:
    from faultlab.workers.faults.mitigations import MITIGATIONS

    assert set(FAULT_MODELS) == set(PARAM_FAULT_MODELS)
    assert set(MITIGATIONS) == set(PARAM_MITIGATIONS)
    for model in FAULT_MODELS.values():  # one file per model, named after it, citing a source
        module = importlib.import_module(model.__class__.__module__)
        assert module.__name__.rsplit(".", 1)[-1] == model.name
        assert re.search(r"(19|20)\d\d", module.__doc__ or ""), model.name


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
    counts = [len(make_trial(params, 0, st, j, 0, get_fault_model("bitflip"))["faults"])
              for j in range(400)]
    # Binomial(32000, 1e-4): mean 3.2, variance ≈ 3.2
    assert np.mean(counts) == pytest.approx(3.2, abs=0.35)
    assert np.var(counts) == pytest.approx(3.2, abs=0.8)
