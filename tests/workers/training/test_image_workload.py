"""The image workload in-process: a cell trains deterministically and its checkpoint, rebuilt
as ``training:image`` through the zoo's artifact source (what ``model: {from_campaign,
cell}`` resolves to), gives the trained model's predictions; the full examples validate with
≥ 5 seeds; deep checks name the field before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faultlab.errors import SpecError
from faultlab.hashing import blob_digest
from faultlab.spec import DatasetSpec, ModelSpec, parse_spec
from faultlab.workers import get_engine
from faultlab.workers.training.image_loop import evaluate, train_image_cell
from faultlab.workers.training.workloads import workload, workload_of_trial
from faultlab.workers.zoo import load_dataset
from faultlab.workers.zoo.sources import build_model_from_source

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


pytestmark = pytest.mark.usefixtures("one_thread")


def _trial(input_spec: dict[str, Any], augment: list[dict[str, Any]]) -> dict[str, Any]:
    recipe = {"name": "r", "optimizer": "adam", "lr": 3e-3, "momentum": 0.9,
              "weight_decay": 5e-4, "epochs": 2, "batch_size": 16, "schedule": "cosine",
              "augment": augment}
    return {"workload": "image", "dataset": "shapes32", "seed": 1, "val_fraction": 0.1,
            "eval_batch_size": 64, "recipe": recipe,
            "variant": {"name": "v", "model": "resnet_small", "model_options": {"width": 4},
                        "input": input_spec}}


FREQ = {"kind": "frequency", "channels": 12, "selection": "gate", "gate_fraction": 0.5,
        "gate_penalty": 0.01, "size": None, "label": None}
MOEX = [{"name": "moex", "params": {"probability": 1.0, "lam": 0.9, "norm": "pono",
                                    "layer": None, "epsilon": 1e-5}}]


@pytest.mark.parametrize(("input_spec", "augment"), [(FREQ, []), ({"kind": "spatial"}, MOEX)])
def test_a_trained_cell_is_a_model_again(input_spec: dict[str, Any],
                                         augment: list[dict[str, Any]]) -> None:
    data = load_dataset(DatasetSpec(name="shapes32", options={"num_per_class": 6, "size": 16}))
    trial = _trial(input_spec, augment)
    result = train_image_cell(data, trial)
    again = train_image_cell(data, trial)
    assert result["status"] == "completed" and result["steps"] == 2
    assert result["test_acc"] == again["test_acc"] and result["curve"]["loss"] == \
        again["curve"]["loss"]  # deterministic in the seed
    ref = workload_of_trial(trial).reference(trial)
    blob = result["checkpoint"]
    digest = blob_digest(blob)
    spec = ModelSpec(name=ref["name"], options=ref["options"], file=digest)
    model, model_digest = build_model_from_source(spec, {digest: blob}, data=data)
    assert model_digest
    acc, _ = evaluate(model, data.x_test, data.y_test, 64)
    assert acc == result["test_acc"]
    if input_spec["kind"] == "frequency":
        assert len(result["selected"]) == 12 and len(result["gate_probabilities"]) == 192
        assert result["input_values"] == 12 * 2 * 2 and result["input_ratio"] == 48 / 768


def test_training_image_options_are_checked() -> None:
    data = load_dataset(DatasetSpec(name="shapes32", options={"num_per_class": 2, "size": 16}))
    image = workload("image")
    with pytest.raises(SpecError) as info:
        image.build_model("image", {"model": "resnet_small", "input": {"kind": "x"}}, data,
                          "model")
    assert info.value.field == "model.options.input.kind"
    with pytest.raises(SpecError) as info:
        image.build_model("image", {"model": "resnet_small"}, None, "model")
    assert info.value.field == "model.name"


@pytest.mark.parametrize(("example", "cells"), [("training-moex.yaml", 3 * 5),
                                                ("training-frequency.yaml", 4 * 5)])
def test_full_examples_validate(example: str, cells: int) -> None:
    spec = parse_spec((EXAMPLES / example).read_text())
    get_engine("training").validate(spec)
    image = workload("image")
    assert image.cells(spec.params) == cells and spec.params.seeds >= 5  # type: ignore[attr-defined]


def _image(**section: Any) -> dict[str, Any]:
    return {"kind": "training", "training": {"workload": "image", "seeds": 1,
                                             "image": section}}


@pytest.mark.parametrize(("section", "field"), [
    ({"datasets": [{"name": "karate"}]}, "training.image.datasets.0.name"),
    ({"datasets": [{"name": "shapes32", "options": {"size": 1}}]},
     "training.image.datasets.0.options.size"),
    ({"datasets": [{"name": "shapes32", "options": {"size": 20}}],
      "variants": {"inputs": [{"kind": "frequency", "channels": 8}]}},
     "training.image.variants.inputs.0.kind"),
    ({"variants": {"models": [{"name": "gcn"}]}}, "training.image.variants.models.0.name"),
    ({"variants": {"models": [{"name": "resnet_small", "options": {"width": 0}}]}},
     "training.image.variants.models.0.options.width"),
    ({"variants": {"models": [{"name": "resnet_small", "options": {"epochs": 3}}]}},
     "training.image.variants.models.0.options.epochs"),
    ({"variants": {"models": [{"name": "digits_cnn"}]},
      "recipes": [{"augment": [{"name": "moex"}]}]}, "training.image.recipes.0.augment.0"),
    ({"recipes": [{"augment": [{"name": "moex", "params": {"layer": "fc"}}]}]},
     "training.image.recipes.0.augment.0.params.layer"),
])
def test_deep_checks_name_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as info:
        get_engine("training").validate(parse_spec(_image(**section)))
    assert info.value.field == field


def test_sweeps_above_the_trial_limit_are_refused() -> None:
    spec = _image(recipes=[{"name": f"r{i}"} for i in range(4)])
    spec["training"]["seeds"] = 10
    spec["execution"] = {"max_trials": 20}
    with pytest.raises(SpecError) as info:
        get_engine("training").validate(parse_spec(spec))
    assert info.value.field == "execution.max_trials"
