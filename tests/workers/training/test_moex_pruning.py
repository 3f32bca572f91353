"""bench/seed_recipes.py's pruning robustness of MoEx vs baseline cells (issue 15): each
trained cell, rebuilt from its checkpoint as ``training:image``, is pruned by a ``kind:
sparsity`` campaign; its accuracy equals torch's own global L1 pruning of the same model on
the same test inputs, and the MoEx − baseline differences are paired over seeds."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from torch import nn
from torch.nn.utils import prune

from faultlab.hashing import blob_digest
from faultlab.spec import DatasetSpec, ModelSpec
from faultlab.workers.training.image_loop import evaluate, train_image_cell
from faultlab.workers.training.workloads import workload_of_trial
from faultlab.workers.zoo import load_dataset
from faultlab.workers.zoo.sources import build_model_from_source

BENCH = Path(__file__).resolve().parents[3] / "bench" / "seed_recipes.py"
OPTIONS = {"num_per_class": 6, "size": 16}
MOEX = [{"name": "moex", "params": {"probability": 1.0, "lam": 0.9, "norm": "pono",
                                    "layer": None, "epsilon": 1e-5}}]


pytestmark = pytest.mark.usefixtures("one_thread")


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_recipes", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(data: Any, recipe: str, seed: int) -> SimpleNamespace:
    trial = {"workload": "image", "dataset": "shapes32", "seed": seed, "val_fraction": 0.1,
             "eval_batch_size": 64, "dataset_options": OPTIONS,
             "recipe": {"name": recipe, "optimizer": "adam", "lr": 3e-3, "momentum": 0.9,
                        "weight_decay": 5e-4, "epochs": 2, "batch_size": 16,
                        "schedule": "cosine", "augment": MOEX if recipe == "moex" else []},
             "variant": {"name": "v", "model": "resnet_small", "model_options": {"width": 4},
                         "input": {"kind": "spatial"}}}
    return SimpleNamespace(trial=trial, result=train_image_cell(data, trial))


def _torch_pruned(data: Any, record: SimpleNamespace, level: float) -> float:
    ref = workload_of_trial(record.trial).reference(record.trial)
    blob = record.result["checkpoint"]
    digest = blob_digest(blob)
    model, _ = build_model_from_source(
        ModelSpec(name=ref["name"], options=ref["options"], file=digest), {digest: blob},
        data=data)
    layers = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=level)
    acc, _ = evaluate(model, data.x_test, data.y_test, 64)
    return float(acc)


def test_pruned_accuracy_is_torch_global_pruning_and_paired_over_seeds() -> None:
    bench = _bench()
    data = load_dataset(DatasetSpec(name="shapes32", options=OPTIONS))
    records = [_record(data, recipe, seed) for seed in (1, 2) for recipe in ("baseline", "moex")]
    levels = (0.5, 0.9)
    cells = {(r.trial["recipe"]["name"], r.trial["seed"]): bench._pruned_accuracy(r, levels)
             for r in records}
    for r in records:
        got = cells[(r.trial["recipe"]["name"], r.trial["seed"])]
        assert set(got) == set(levels)
        for level in levels:
            assert got[level] == pytest.approx(_torch_pruned(data, r, level))
    diff = bench._pruning_diff(records, levels)
    assert set(diff) == {"0.5", "0.9"}
    for level in levels:
        fig = diff[f"{level:g}"]
        want = sum(cells[("moex", s)][level] - cells[("baseline", s)][level] for s in (1, 2)) / 2
        assert fig["pairs"] == 2 and fig["estimate"] == pytest.approx(want)
        assert fig["ci"][0] <= fig["estimate"] <= fig["ci"][1]
        gap = sum(r.result["test_acc"] * (1 if r.trial["recipe"]["name"] == "moex" else -1)
                  for r in records) / 2
        assert fig["retained_diff"]["estimate"] == pytest.approx(want - gap)
