"""A trained cell's checkpoint: safetensors bytes that rebuild the same model through the
``training:<family>`` zoo source; live curve points while a cell trains; the blob/digest
round trip the coordinator does; CurveEvent's encodings; ``model.from_campaign`` rules."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from faultlab.errors import SpecError
from faultlab.events import (
    CurveEvent,
    StoredEvent,
    event_from_dict,
    event_from_proto,
    event_to_proto,
)
from faultlab.hashing import blob_digest
from faultlab.spec import DatasetSpec, ModelSpec, model_source
from faultlab.workers import progress
from faultlab.workers.training.loop import CURVE_KEYS, train_cell
from faultlab.workers.zoo import GraphData, load_dataset
from faultlab.workers.zoo.provided import provided_artifacts
from faultlab.workers.zoo.registry import trained_model

VARIANT = {"name": "gcn-d3-w8-residual-relu", "family": "gcn", "depth": 3, "width": 8,
           "skip": "residual", "linear": False, "norm": "none", "bias": False}
RECIPE = {"optimizer": "adam", "lr": 0.05, "momentum": 0.0, "schedule": "constant",
          "epochs": 20, "loss_target": None, "weight_decay": 0.0, "labels": {}}
TARGETS = {"loss": None, "loss_ratio": 0.5, "accuracy": 0.9, "accuracy_split": "train"}


@pytest.fixture(scope="module")
def karate() -> GraphData:
    data = load_dataset(DatasetSpec.model_validate({"name": "karate"}), task="graph")
    assert isinstance(data, GraphData)
    return data


def _train(graph: GraphData, on_point: Any = None) -> dict[str, Any]:
    return train_cell(graph, VARIANT, RECIPE, TARGETS, seed=3, curve_points=5,
                      on_point=on_point)


def test_checkpoint_rebuilds_the_trained_model(karate: GraphData) -> None:
    points: list[dict[str, float]] = []
    result = _train(karate, points.append)
    blob = result["checkpoint"]
    assert isinstance(blob, bytes) and blob == _train(karate)["checkpoint"]  # deterministic
    assert points[0]["step"] == 0 and points[-1]["step"] == result["steps"]
    assert set(points[0]) == set(CURVE_KEYS)
    options = {k: VARIANT[k] for k in ("depth", "width", "skip", "linear", "norm", "bias")}
    spec = ModelSpec.model_validate({"name": "training:gcn", "file": blob_digest(blob),
                                     "options": options})
    assert model_source(spec.name) == "training"
    with provided_artifacts({blob_digest(blob): blob}):
        model, _ = trained_model(spec, karate)
    with torch.no_grad():
        logits = model(karate.data.x, karate.data.edge_index)
    ids = karate.split("train")
    acc = float((logits[ids].argmax(1) == karate.data.y[ids]).float().mean())
    assert acc == pytest.approx(result["train_acc"])


def test_training_source_checks_its_options(karate: GraphData) -> None:
    blob = _train(karate)["checkpoint"]
    bad = ModelSpec.model_validate({"name": "training:gcn", "file": blob_digest(blob),
                                    "options": {"depth": 0}})
    with provided_artifacts({blob_digest(blob): blob}), pytest.raises(SpecError) as info:
        trained_model(bad, karate)
    assert info.value.field == "model.options.depth"
    wrong = ModelSpec.model_validate({"name": "training:gcn", "file": blob_digest(blob),
                                      "options": {"depth": 2, "width": 8}})
    with provided_artifacts({blob_digest(blob): blob}), pytest.raises(SpecError) as info:
        trained_model(wrong, karate)
    assert info.value.field == "model.file" and "does not fit" in info.value.problem


def test_emit_without_a_channel_is_a_no_op() -> None:
    progress.emit(0, {"curve": {"step": 1}})
    with progress.activated(None):
        progress.emit(0, {"curve": {"step": 1}})


def test_curve_event_round_trips() -> None:
    event = CurveEvent("k" * 64, {"curve": {"step": 3.0, "loss": 0.25}})
    assert event_from_dict(event.to_dict()) == event
    stored = StoredEvent("7", 1.5, event)
    assert event_from_proto(event_to_proto("c1", stored)) == stored


@pytest.mark.parametrize(
    ("model", "field"),
    [({"cell": {"seed": 0}}, "model.cell"),
     ({"from_campaign": "abc", "file": "x.safetensors"}, "model.from_campaign"),
     ({"from_campaign": "abc", "options": {"depth": 2}}, "model.from_campaign"),
     ({"from_campaign": "../etc"}, "model.from_campaign")],
)
def test_from_campaign_rules(model: dict[str, Any], field: str) -> None:
    from faultlab.spec import parse_spec

    with pytest.raises(SpecError) as info:
        parse_spec({"kind": "faults", "model": model})
    assert info.value.field == field


def test_watch_line_of_a_curve_event() -> None:
    from faultlab.client._client import curve_line

    line = curve_line({"key": "abcdef", "point": {"curve": {"step": 3, "loss": 0.5}}})
    assert line == "abcdef  step 3 loss 0.5"
