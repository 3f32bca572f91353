"""Mitigations (``workers/faults/mitigations/``): each guard's formula on out-of-range and
non-finite values, hooks installed and removed, default layers, and the registry."""

from __future__ import annotations

import importlib
import math
import re

import pytest
import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.faults.mitigations import MITIGATIONS, Mitigation

VALUES = torch.tensor([-5.0, -1.0, 0.5, 2.0, 9.0, math.nan, math.inf, -math.inf])


def mitigation(name: str) -> Mitigation:
    return MITIGATIONS.get(name).impl()


def test_ranger_clamps_to_the_bounds_and_nan_to_the_lower_bound() -> None:
    out = mitigation("ranger").guard(VALUES, -1.0, 2.0)
    assert out.tolist() == [-1.0, -1.0, 0.5, 2.0, 2.0, -1.0, 2.0, -1.0]


def test_clipping_zeroes_out_of_range_and_non_finite_values() -> None:
    out = mitigation("clipping").guard(VALUES, -1.0, 2.0)
    assert out.tolist() == [0.0, -1.0, 0.5, 2.0, 0.0, 0.0, 0.0, 0.0]


def test_gnn_bound_clamps_and_zeroes_nan() -> None:
    out = mitigation("gnn_bound").guard(VALUES, -1.0, 2.0)
    assert out.tolist() == [-1.0, -1.0, 0.5, 2.0, 2.0, 0.0, 2.0, -1.0]


def test_profile_then_install_guards_with_slack_and_removes_its_hooks() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
    ranger = mitigation("ranger")
    assert ranger.default_layers(model) == ["1"]
    x = torch.tensor([[0.0, 1.0], [2.0, 0.5]])
    bounds = ranger.profile(model, ["1"], lambda: model(x))
    assert bounds == {"1": [0.0, 2.0]}
    big = torch.tensor([[10.0, 1.0]])
    with ranger.install(model, bounds, slack=0.5):
        assert model(big).tolist() == [[3.0, 1.0]]  # 2 + 0.5 · (2 − 0)
    assert model(big).tolist() == [[10.0, 1.0]]  # hooks removed


def test_gnn_bound_refuses_layers_that_are_not_message_passing() -> None:
    with pytest.raises(ValueError, match="MessagePassing"):
        mitigation("gnn_bound").register(nn.ReLU(), lambda *a: None)


def test_every_mitigation_is_one_file_citing_its_paper_and_formula() -> None:
    assert set(MITIGATIONS.names()) == {"ranger", "clipping", "gnn_bound"}
    for name, method in MITIGATIONS.entries().items():
        module = importlib.import_module(method.impl.__module__)
        assert module.__name__.rsplit(".", 1)[-1] == name
        assert re.search(r"(19|20)\d\d", module.__doc__ or ""), name
        assert ".. math::" in (module.__doc__ or ""), name
        assert re.search(r"(19|20)\d\d", method.citation) and method.summary, name


def test_unknown_mitigation_names_the_field_with_the_allowed_names() -> None:
    with pytest.raises(SpecError) as err:
        MITIGATIONS.get("tmr", "faults.mitigations[0].name")
    assert err.value.field == "faults.mitigations[0].name"
    assert err.value.allowed == "clipping, gnn_bound, ranger"
    with pytest.raises(SpecError) as err:
        parse_spec({"kind": "faults", "faults": {"mitigations": [{"name": "tmr"}]}})
    assert err.value.field == "faults.mitigations.0.name" and "ranger" in str(err.value)
