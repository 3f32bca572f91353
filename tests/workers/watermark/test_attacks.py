"""Removal attacks (``workers/watermark/attacks/*``): the registry, each attack's own
``Params``, strength knob and citation, and what input- and weight-side attacks do."""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
import typing
from collections.abc import Callable
from typing import Any

import pytest
import torch
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, run_attack
from faultlab.workers.watermark.attacks.bitflip import BitflipParams
from faultlab.workers.watermark.attacks.jpeg import jpeg_compress
from faultlab.workers.watermark.catalog import AttackParams
from faultlab.workers.watermark.params import AttackSpec, WatermarkParams, sweep
from faultlab.workers.watermark.schemes.base import SCHEMES
from faultlab.workers.zoo import ImageData, trained_model
from tests.workers.watermark import FAST

NAMES = [
    "bandstop", "bitflip", "blur", "distill", "fine_prune", "ftal", "ftll", "gaussian_noise",
    "input_quantization", "jpeg", "lowpass", "prune", "rtal", "rtll", "weight_noise",
    "weight_quantization",
]


def spec(**watermark: Any) -> dict[str, Any]:
    return {"kind": "watermark", "seed": 0, "model": FAST.model_dump(mode="json"),
            "dataset": {"name": "digits"}, "watermark": watermark}


def test_every_attack_is_registered_with_its_params_knob_and_citation() -> None:
    assert ATTACKS.names() == NAMES
    for name, method in ATTACKS.entries().items():
        assert method.citation and method.summary, name
        model = method.params
        assert issubclass(model, AttackParams), name
        model.model_validate({})  # every parameter has a default
        knob = model.strength
        for value in knob.defaults:
            assert knob.low <= value <= knob.high, name
            assert not knob.integer or value == int(value), name


def _numbers(annotation: Any) -> list[Any]:
    """The int/float types inside an annotation (through Optional, list and Annotated)."""
    origin = typing.get_origin(annotation)
    if annotation in (int, float):
        return [annotation]
    if origin is typing.Literal:
        return []
    if origin is typing.Annotated:
        return [annotation]
    if origin in (list, typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _numbers(arg)]
    return []


def _bounded(item: Any) -> bool:
    """Whether a field (or an ``Annotated`` item type) has a lower and an upper bound."""
    if isinstance(item, FieldInfo):
        metadata = list(item.metadata)
    else:
        metadata = [m for extra in typing.get_args(item)[1:]
                    for m in (extra.metadata if isinstance(extra, FieldInfo) else [extra])]
    kinds = {type(m).__name__ for m in metadata}
    return bool(kinds & {"Ge", "Gt"}) and bool(kinds & {"Le", "Lt"})


@pytest.mark.parametrize("family", ["scheme", "attack"])
def test_every_number_of_every_method_is_bounded(family: str) -> None:
    registry = SCHEMES if family == "scheme" else ATTACKS
    for name, method in registry.entries().items():
        model: type[BaseModel] = method.params
        for field, info in model.model_fields.items():
            annotation = info.annotation
            if typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(
                typing.get_origin(a) is typing.Literal for a in typing.get_args(annotation)
            ):
                continue  # a name or an id, checked against the data (``check_section``)
            inner = [t for t in _numbers(annotation) if t not in (int, float)]
            direct = [t for t in _numbers(annotation) if t in (int, float)]
            assert not direct or _bounded(info), (name, field)
            assert all(_bounded(t) for t in inner), (name, field)


def _documented_fields(model: type) -> set[str]:
    """The fields of ``model`` (and its bases) followed by a docstring in their class body."""
    found: set[str] = set()
    for cls in model.__mro__:
        if not cls.__module__.startswith("faultlab.workers.watermark"):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
        assert isinstance(body, ast.ClassDef)
        for stmt, after in zip(body.body, body.body[1:], strict=False):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                found.add(stmt.target.id)
    return found


@pytest.mark.parametrize("family", ["scheme", "attack"])
def test_every_parameter_of_every_method_has_a_docstring(family: str) -> None:
    registry = SCHEMES if family == "scheme" else ATTACKS
    for name, method in registry.entries().items():
        assert method.params.__doc__, name
        missing = set(method.params.model_fields) - _documented_fields(method.params)
        assert not missing, (name, missing)


def test_unknown_attack_names_the_field_and_the_allowed_names() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec(attacks=[{"name": "prune"}, {"name": "nope"}]))
    assert info.value.field == "watermark.attacks[1].name"
    assert "unknown attack 'nope'" in info.value.problem
    assert info.value.allowed == ", ".join(sorted([*NAMES, "chain"]))
    with pytest.raises(SpecError) as step:
        parse_spec(spec(attacks=[{"name": "chain", "steps": [{"name": "prune"}, {"name": "x"}]}]))
    assert step.value.field == "watermark.attacks[0].steps[1].name"
    assert step.value.allowed == ", ".join(NAMES)  # a chain does not nest
    with pytest.raises(SpecError) as direct:
        ATTACKS.get("nope")
    assert direct.value.field == "watermark.attacks.name"


@pytest.mark.parametrize(
    ("attack", "field"),
    [
        ({"name": "bitflip", "params": {"bits": [32]}}, "params.bits.0"),
        ({"name": "bitflip", "params": {"bits": []}}, "params.bits"),
        ({"name": "bandstop", "params": {"center": 1.5}}, "params.center"),
        ({"name": "fine_prune", "params": {"epochs": -1}}, "params.epochs"),
        ({"name": "distill", "params": {"temperature": 1000}}, "params.temperature"),
        ({"name": "ftll", "params": {"batch_size": 0}}, "params.batch_size"),
        ({"name": "jpeg", "params": {"quality": 50}}, "params.quality"),
        ({"name": "prune", "params": {"scope": "row"}}, "params.scope"),
        ({"name": "chain", "params": {"lr": 0.1}, "steps": [{"name": "ftal"}]}, "params"),
        ({"name": "chain", "steps": [{"name": "ftal", "params": {"lr": 0}}]}, "steps[0].params.lr"),
        ({"name": "prune", "steps": [{"name": "ftal"}]}, "steps"),
        ({"name": "chain", "steps": []}, "steps"),
    ],
)
def test_attack_params_are_bounded(attack: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec(attacks=[attack]))
    assert info.value.field == f"watermark.attacks[0].{field}"


def test_attack_params_are_the_attacks_own_model_and_dump_as_given() -> None:
    section = WatermarkParams.model_validate({"attacks": [
        {"name": "bitflip", "params": {"bits": [0, 1]}, "strengths": [1e-4]},
        {"name": "chain", "steps": [{"name": "prune"}, {"name": "ftal", "strength": 2}]},
    ]})
    bitflip, chain = section.attacks
    assert isinstance(bitflip.params, BitflipParams) and bitflip.params.bits == [0, 1]
    assert isinstance(chain.steps[1].params, ATTACKS.get("ftal").params)
    dumped = section.model_dump(mode="json")["attacks"]
    assert dumped[0] == {"name": "bitflip", "strengths": [1e-4], "params": {"bits": [0, 1]},
                         "steps": []}
    assert dumped[1]["steps"][0] == {"name": "prune", "strength": None, "params": {}}
    assert WatermarkParams.model_validate(section.model_dump(mode="json")) == section
    # The sweep: the attack's default strengths, weakest first; a chain sweeps its open step.
    assert sweep(AttackSpec(name="jpeg")) == [90, 70, 50, 30, 10]
    assert sweep(chain) == [0.2, 0.4, 0.6, 0.8, 0.9]


def test_input_attacks_are_identity_at_zero_strength(
    digits: ImageData, model: torch.nn.Module, fresh: Callable[[int], torch.nn.Module]
) -> None:
    ctx = AttackContext(digits, 0, 1 / 3, fresh, "watermark.attacks[0]")
    x = digits.x_test[:16]
    for name, strength, tol in [("lowpass", 1.0, 1e-5), ("input_quantization", 16, 1e-4),
                                ("blur", 0.0, 0.0), ("gaussian_noise", 0.0, 0.0),
                                ("bandstop", 0.0, 1e-5)]:
        attacked = run_attack(model, AttackSpec(name=name), strength, ctx)
        assert attacked.preprocess is not None
        assert float((attacked.preprocess(x) - x).abs().max()) <= tol, name
    err = (jpeg_compress(x, 100, 0.0, 1.0) - x).abs().max()
    assert float(err) < 0.02  # quality 100 leaves rounding only
    assert float((jpeg_compress(x, 5, 0.0, 1.0) - x).abs().mean()) > 0.02


def test_weight_attacks(
    digits: ImageData, model: torch.nn.Module, fresh: Callable[[int], torch.nn.Module]
) -> None:
    ctx = AttackContext(digits, 0, 1 / 3, fresh, "watermark.attacks[0]")
    pruned = run_attack(model, AttackSpec(name="prune"), 0.6, ctx).model
    layers = torch.nn.Conv2d | torch.nn.Linear
    weights = torch.cat([m.weight.flatten() for m in pruned.modules() if isinstance(m, layers)])
    assert float((weights == 0).float().mean()) == pytest.approx(0.6, abs=1e-3)
    bits = AttackSpec(name="bitflip", params={"bits": [0]})
    flipped = run_attack(model, bits, 0.01, ctx).model
    changed = sum(int((a != b).sum())
                  for a, b in zip(model.parameters(), flipped.parameters(), strict=True))
    assert changed > 0
    tensor = AttackSpec(name="weight_quantization", params={"granularity": "tensor"})
    quant = run_attack(model, tensor, 2, ctx).model
    fc1 = quant.get_submodule("fc1")
    assert isinstance(fc1, torch.nn.Linear)
    assert int(torch.unique(fc1.weight).numel()) <= 3  # 2 bits: ternary
    original = trained_model(FAST, digits, 0)[0]
    assert all(torch.equal(a, b)
               for a, b in zip(model.parameters(), original.parameters(), strict=True))
