"""Pseudo-oracles (``workers/sampling/oracles/*``) and input shifts (``shifts.py``): the
registries, their citations and what each scores on a toy model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.workers.sampling.oracles import ORACLES
from faultlab.workers.sampling.params import DEFAULT_ORACLES
from faultlab.workers.sampling.shifts import SHIFTS, apply_shift


def test_default_oracles_are_the_registered_ones() -> None:
    assert sorted(DEFAULT_ORACLES) == ORACLES.names()
    for name, method in ORACLES.entries().items():
        assert method.citation and method.summary, name


def test_every_shift_is_registered_with_a_citation() -> None:
    assert SHIFTS.names() == sorted(
        ["clean", "gaussian_noise", "salt_pepper", "blur", "translate", "rotate", "contrast",
         "occlusion"]
    )
    for name, method in SHIFTS.entries().items():
        assert method.citation, name


def test_unknown_shift_names_the_allowed_ones() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"kind": "sampling", "sampling": {"pool": {"shifts": [{"name": "fog"}]}}})
    assert info.value.field == "sampling.pool.shifts.0.name"
    assert "unknown shift 'fog'" in str(info.value) and "clean" in str(info.value)
    with pytest.raises(SpecError) as err:
        SHIFTS.get("fog")
    assert err.value.field == "sampling.pool.shifts.name"


@pytest.mark.parametrize("name", sorted(SHIFTS.names()))
def test_shifts_keep_shape_and_range(name: str) -> None:
    x = torch.rand(4, 1, 8, 8)
    out = apply_shift(name, x, 0.5, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert float(out.min()) >= float(x.min()) - 1e-6
    assert float(out.max()) <= float(x.max()) + 1e-6


def test_softmax_oracles_score_a_toy_model() -> None:
    from faultlab.workers.sampling.oracles.base import ScoringContext

    logits = torch.tensor([[4.0, 0.0], [0.1, 0.0]])
    ctx = ScoringContext.__new__(ScoringContext)
    object.__setattr__(ctx, "logits", logits)
    msp = ORACLES.get("msp").impl(ctx)
    assert msp.p_correct is not None
    assert msp.suspicion[1] > msp.suspicion[0]
    for name in ("entropy", "margin"):
        scores = ORACLES.get(name).impl(ctx)
        assert scores.suspicion[1] > scores.suspicion[0], name
    assert np.allclose(msp.suspicion, 1.0 - msp.p_correct)
    assert isinstance(nn.Linear(2, 2), nn.Module)
