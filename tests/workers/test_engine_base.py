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
    "faults": "cb082143ec7a01562d7dbe28c9f1a947555e2858a075ce9b6d2f6fd5e2cef82c",
    "sparsity": "07122c676aa4b5907aa68daa8df8fe536ea179d36c12a62c8f4ff979ff0a8d94",
    "watermark": "5464bcc55afab8d9f4322a9e2987a856a71b7b9235c1965d5265e298527c140d",
    "sampling": "2b90e1b1ae74b8d31b071c68317312e2a4b19d655401841c5b130301cd724a38",
}


#: faults 2: top-k / logit-deviation outcomes, container activation sites no longer counted.
#: faults 3: multi-target campaigns, per-input activation positions, GAT attention vectors as
#: weight sites, ``critical_logit_deviation`` per trial (re-thresholding SDC after the fact).
#: watermark 2: per-trigger backup labels (a key-blind null); sampling 2: group-aware
#: improvement split and small-budget intervals; sampling 3: DeepEST's t quantile on failures
#: found − 1 degrees of freedom; sparsity 2: sensitivity scans score a validation split carved
#: from train. A version bump changes every key of the kind.
VERSIONS = {"faults": "3", "watermark": "2", "sampling": "3", "sparsity": "2"}


def _spec(kind: str) -> Any:
    return parse_spec({"kind": kind, "model": {"name": "mlp"}, "dataset": {"name": "digits"},
                       "seed": 3})


@pytest.mark.parametrize("kind", sorted(EXPECTED_KEYS))
def test_trial_key_is_stable(kind: str) -> None:
    engine = get_engine(kind)
    spec = _spec(kind)
    assert engine.version == VERSIONS.get(kind, "1")
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
        "engine": "sparsity", "engine_version": "2", "model_digest": "m" * 8,
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
