"""Fault models (``workers/faults/models/``): bit-level correctness on the true IEEE-754 /
bfloat16 / two's-complement layouts, scalar and vectorised forms agreeing, and the registry."""

from __future__ import annotations

import importlib
import math
import random
import re
import struct

import pytest
import torch

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.faults.formats import bits_to_float, float_to_bits, raw_view
from faultlab.workers.faults.models import FAULT_MODELS, ElementFormat, FaultModel
from faultlab.workers.faults.params import BITLESS_MODELS, MULTI_BIT_MODELS


def fault_model(name: str) -> FaultModel:
    return FAULT_MODELS.get(name).impl()


def _flip(t: torch.Tensor, bit: int) -> torch.Tensor:
    out = t.clone()
    fmt = ElementFormat(out.element_size() * 8, out.is_floating_point(), str(out.dtype)[6:])
    raw = raw_view(out)
    raw[0] = fault_model("bitflip").apply_tensor(raw[0], {"bits": [bit]}, fmt)
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
    [
        (torch.float32, 32, _fp32_reference),
        (torch.float16, 16, _fp16_reference),
        (torch.bfloat16, 16, _bf16_reference),
    ],
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
            expected = (v & 0xFF) ^ (1 << bit)
            expected = expected - 256 if expected >= 128 else expected
            assert int(_flip(t, bit).item()) == expected


def test_stuck_at_and_value_models_on_patterns() -> None:
    fmt = ElementFormat(32, True, "float32")
    one = float_to_bits(1.0, torch.float32)  # 0x3F800000
    sa0, sa1 = fault_model("stuck_at_0"), fault_model("stuck_at_1")
    assert sa0.apply(one, {"bits": [29]}, fmt) == one & ~(1 << 29)
    assert sa0.apply(one, {"bits": [31]}, fmt) == one  # already 0: masked by construction
    assert sa1.apply(one, {"bits": [31]}, fmt) == one | (1 << 31)
    assert bits_to_float(sa1.apply(one, {"bits": [31]}, fmt), torch.float32) == -1.0
    assert fault_model("zero").apply(one, {}, fmt) == 0
    assert (
        bits_to_float(fault_model("random_value").apply(one, {"value": 0.5}, fmt), torch.float32)
        == 0.5
    )
    adj = fault_model("adjacent_bitflip")
    assert adj.apply(0, {"bits": [3, 4, 5]}, fmt) == 0b111000
    # vectorised form agrees with the scalar form on every model
    t = torch.tensor([1.0, -3.25, 7e-3], dtype=torch.float32)
    for name, fault in [
        ("stuck_at_0", {"bits": [31]}),
        ("stuck_at_1", {"bits": [30]}),
        ("multi_bitflip", {"bits": [1, 20, 31]}),
        ("zero", {}),
        ("random_value", {"value": -0.75}),
    ]:
        model = fault_model(name)
        vec = model.apply_tensor(raw_view(t.clone()), fault, fmt)
        for k in range(3):
            p = float_to_bits(float(t[k]), torch.float32)
            assert int(vec[k]) & 0xFFFFFFFF == model.apply(p, fault, fmt), name


def test_every_fault_model_is_one_file_citing_its_paper_and_formula() -> None:
    for name, method in FAULT_MODELS.entries().items():
        module = importlib.import_module(method.impl.__module__)
        assert module.__name__.rsplit(".", 1)[-1] == name  # one file per model, named after it
        assert re.search(r"(19|20)\d\d", module.__doc__ or ""), name
        assert ".. math::" in (module.__doc__ or ""), name
        assert re.search(r"(19|20)\d\d", method.citation) and method.summary, name


def test_spec_name_sets_match_the_models() -> None:
    """``faults/params.py`` keeps the bitless / multi-bit names torch-free; they must agree
    with the models' own ``per_bit`` flag and the registry."""
    names = set(FAULT_MODELS.names())
    assert BITLESS_MODELS | MULTI_BIT_MODELS <= names
    for name in names:
        per_bit = FAULT_MODELS.get(name).impl.per_bit
        assert per_bit == (name not in BITLESS_MODELS | MULTI_BIT_MODELS), name


def test_unknown_fault_model_names_the_field_with_the_allowed_names() -> None:
    with pytest.raises(SpecError) as err:
        FAULT_MODELS.get("cosmic_ray")
    assert err.value.field == "faults.fault_model"
    assert err.value.allowed == ", ".join(FAULT_MODELS.names()) and "bitflip" in FAULT_MODELS
    with pytest.raises(SpecError) as err:
        parse_spec({"kind": "faults", "faults": {"fault_model": "cosmic_ray"}})
    assert err.value.field == "faults.fault_model" and "multi_bitflip" in str(err.value)
