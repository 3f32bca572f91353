"""The engine base class: typed params, trial keys, provenance, replay comparison."""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.errors import SpecError
from faultlab.spec import parse_spec
from faultlab.version import code_version
from faultlab.workers import get_engine

TRIAL = {"workload": "mlp@digits", "layer": "fc1.weight", "bit": 30, "index": [3, 7], "seed": 11,
         "rate": 0.5}
META = {"model_digest": "m" * 8, "dataset_digest": "d" * 8}

#: Keys computed with the pre-base ``workers/local.py:keyed``. Watermark and sampling keys are
#: unchanged; faults and sparsity moved from version "faults-1"/"sparsity-1" to "1" (one
#: convention: a decimal counter; the kind is already part of the key).
EXPECTED_KEYS = {
    "faults": "de832fe7a93dd3a5454292eb0c87dc96a296b81a92557932da4ce76027d3ba1e",
    "sparsity": "5ae06d9a97fe4c7686bb411c8ee03c67024471db14004113dc022f0a62575faa",
    "watermark": "a6aae9bc71a6f225ac642e112ed1c4773cec97d324760d886a547aa9b383dd82",
    "sampling": "ba587efedae7d8d89badbbc82457146ae74d4880e1db3fbd88112c480f7cec93",
}


def _spec(kind: str) -> Any:
    return parse_spec({"kind": kind, "model": {"name": "mlp"}, "dataset": {"name": "digits"},
                       "seed": 3})


@pytest.mark.parametrize("kind", sorted(EXPECTED_KEYS))
def test_trial_key_is_stable(kind: str) -> None:
    engine = get_engine(kind)
    spec = _spec(kind)
    assert engine.version == "1"
    assert engine.trial_key(spec, META, TRIAL) == EXPECTED_KEYS[kind]
    assert engine.keyed(spec, META, [TRIAL, TRIAL]) == [(EXPECTED_KEYS[kind], TRIAL)] * 2
    changed = {**META, "model_digest": "other"}
    assert engine.trial_key(spec, changed, TRIAL) != EXPECTED_KEYS[kind]
    with pytest.raises(ValueError):
        engine.trial_key(_spec("faults" if kind != "faults" else "sampling"), META, TRIAL)


@pytest.mark.parametrize("kind", sorted(EXPECTED_KEYS))
def test_params_are_typed_and_checked(kind: str) -> None:
    engine = get_engine(kind)
    spec = _spec(kind)
    assert isinstance(engine.params(spec), engine.params_type)
    other = _spec("faults" if kind != "faults" else "sampling")
    with pytest.raises(SpecError) as err:
        engine.params(other)
    assert err.value.field == "kind"


def test_provenance_fields() -> None:
    engine = get_engine("sparsity")
    spec = _spec("sparsity")
    prov = engine.provenance(spec, META, calibration={"samples": 4})
    assert prov == {
        "spec_hash": spec.spec_hash, "code_version": code_version(), "seed": 3,
        "engine": "sparsity", "engine_version": "1", "model_digest": "m" * 8,
        "dataset_digest": "d" * 8, "calibration": {"samples": 4},
    }


def test_outcomes_equal_ignores_timings_at_any_depth() -> None:
    engine = get_engine("faults")
    stored = {"outcome": "sdc", "compute_seconds": 1.0,
              "mitigated": {"ranger": {"outcome": "masked", "forward_seconds": 0.1}},
              "rows": [{"accuracy": 0.5, "train_seconds": 3.0}]}
    replayed = {"outcome": "sdc", "compute_seconds": 9.0,
                "mitigated": {"ranger": {"outcome": "masked", "forward_seconds": 0.7}},
                "rows": [{"accuracy": 0.5, "train_seconds": 1.0}]}
    assert engine.outcomes_equal(stored, replayed)
    different = {**replayed, "mitigated": {"ranger": {"outcome": "sdc", "forward_seconds": 0.7}}}
    assert not engine.outcomes_equal(stored, different)
    assert not engine.outcomes_equal(stored, {**replayed, "rows": [{"accuracy": 0.4}]})


def test_outcomes_equal_ignores_artifact_sources_for_watermark() -> None:
    engine = get_engine("watermark")
    assert engine.outcomes_equal({"test_correct": 5, "embed_source": "computed"},
                                 {"test_correct": 5, "embed_source": "disk"})
    assert not get_engine("faults").outcomes_equal({"embed_source": "computed"},
                                                   {"embed_source": "disk"})
