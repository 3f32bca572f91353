"""Watermarking schemes (``workers/watermark/schemes/*``): the registry, each scheme's own
``Params`` and citation, and a keygen → embed → verify round trip per scheme."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.watermark.catalog import SchemeParams
from faultlab.workers.watermark.embedding import final_linear, resize_outputs
from faultlab.workers.watermark.params import EmbedParams, SchemeSpec, WatermarkParams
from faultlab.workers.watermark.schemes.base import SCHEMES, SchemeContext, WatermarkKey
from faultlab.workers.watermark.schemes.frequency import FrequencyParams
from faultlab.workers.watermark.schemes.zhang import ZhangParams
from faultlab.workers.watermark.sensitivity import analyse
from faultlab.workers.watermark.verify import binomial_p_value
from faultlab.workers.zoo import ImageData
from tests.workers.watermark import FAST


def spec(**watermark: Any) -> dict[str, Any]:
    return {"kind": "watermark", "seed": 0, "model": FAST.model_dump(mode="json"),
            "dataset": {"name": "digits"}, "watermark": watermark}


def test_every_scheme_is_registered_with_its_params_and_citation() -> None:
    assert SCHEMES.names() == ["adi", "frequency", "zhang"]
    for name, method in SCHEMES.entries().items():
        assert method.citation and method.summary, name
        assert issubclass(method.params, SchemeParams), name
        method.params.model_validate({})  # every parameter has a default


def test_unknown_scheme_names_the_field_and_the_allowed_names() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec(schemes=[{"name": "frequency"}, {"name": "nope"}]))
    assert info.value.field == "watermark.schemes[1].name"
    assert "unknown scheme 'nope'" in info.value.problem
    assert info.value.allowed == "adi, frequency, zhang"
    with pytest.raises(SpecError) as direct:
        SCHEMES.get("nope")
    assert direct.value.field == "watermark.schemes.name"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": "frequency", "params": {"amplitude": 0.0}}, "params.amplitude"),
        ({"name": "frequency", "params": {"num_frequencies": 5000}}, "params.num_frequencies"),
        ({"name": "frequency", "params": {"cluster": -1}}, "params.cluster"),
        ({"name": "zhang", "params": {"source_class": -1}}, "params.source_class"),
        ({"name": "zhang", "params": {"noise_std": 3.0}}, "params.noise_std"),
        ({"name": "adi", "params": {"pattern": "stripes"}}, "params.pattern"),
        ({"name": "adi", "params": {"kind": "noise"}}, "params.kind"),
    ],
)
def test_scheme_params_are_bounded(params: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec(schemes=[params]))
    assert info.value.field == f"watermark.schemes[0].{field}"


def test_scheme_params_are_the_schemes_own_model_and_dump_as_given() -> None:
    section = WatermarkParams.model_validate(
        {"schemes": [{"name": "zhang", "params": {"kind": "noise"}}, {"name": "frequency"}]}
    )
    zhang, frequency = section.schemes
    assert isinstance(zhang.params, ZhangParams) and zhang.params.kind == "noise"
    assert isinstance(frequency.params, FrequencyParams) and frequency.params.cluster == "mid"
    dumped = section.model_dump(mode="json")["schemes"]
    assert dumped == [{"name": "zhang", "params": {"kind": "noise"}},
                      {"name": "frequency", "params": {}}]
    assert WatermarkParams.model_validate(section.model_dump(mode="json")) == section
    assert SchemeSpec.model_validate(dumped[0]) == zhang


@pytest.mark.parametrize("name", ["frequency", "adi", "zhang"])
def test_scheme_round_trip(
    name: str, digits: ImageData, model: torch.nn.Module, fresh: Callable[[int], torch.nn.Module]
) -> None:
    sens = analyse(model, digits.x_train[:64], digits.y_train[:64], epsilon=0.1, repeats=1,
                   clusters=3, seed=0)
    ctx = SchemeContext(digits, model, 0, 40, "watermark.schemes[0]", lambda: sens, fresh, name)
    scheme = SCHEMES.get(name).impl()
    params = SCHEMES.parse_params(name, {})
    key = scheme.keygen(ctx, params)
    assert key.scheme == name
    again = WatermarkKey.from_state(key.state())
    assert torch.equal(again.triggers, key.triggers) and again.info == key.info
    assert torch.equal(scheme.keygen(ctx, params).triggers, key.triggers)  # deterministic
    watermarked = scheme.embed(ctx, key, params, EmbedParams(epochs=15))
    evidence = scheme.verify(watermarked, key)
    assert evidence.primary is not None and evidence.primary >= 0.9 * evidence.n
    innocent = scheme.verify(model, key)
    assert (innocent.primary or 0) < 0.5 * innocent.n
    if name == "frequency":
        assert isinstance(params, FrequencyParams) and key.num_outputs == digits.num_classes + 1
        head = final_linear(watermarked, digits.num_classes + 1)
        assert head is not None
        cut = resize_outputs(watermarked, head[0], digits.num_classes)  # attacker drops class K
        dropped = scheme.verify(cut, key)
        assert dropped.primary is None and dropped.backup is not None
        # Still verifiable against the key-blind bound 1/(K-1) of the backup rule.
        assert binomial_p_value(dropped.backup, dropped.n, 1 / (digits.num_classes - 1)) < 1e-3
