"""The training engine's device path on the CPU (the GPU run: ``tests/gpu/test_gpu_paths.py``).

* ``to_device`` copies every tensor of each workload's context — graphs, image tensors, the
  hyperspectral cube and patches — to the device it is given (checked with ``meta``, a device
  other than the CPU), leaves the given context and the zoo's cached datasets on the CPU, and
  copies nothing that is there already;
* every tensor the training code creates names its device: statically (each torch factory call
  in ``workers/training`` has ``device=``; layers are built without one only inside a model's
  ``__init__``, on the CPU under the cell's seed, and moved with the model) and at run time (no
  factory call made directly by the training code falls back to the default device while a
  shard of each workload trains);
* a shard on the moved (CPU) context gives bit-identical records — checkpoints included — to
  the unmoved one, and its checkpoints are CPU tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors

import faultlab.workers.training as training_package
from faultlab.spec import DatasetSpec, parse_spec
from faultlab.workers import get_engine
from faultlab.workers.tasks import ShardContext, on_device
from faultlab.workers.zoo import load_dataset
from tests.device_checks import (
    DefaultDeviceCalls,
    package_default_device_calls,
)

CPU, META = torch.device("cpu"), torch.device("meta")
ENGINE = get_engine("training")
PACKAGE = Path(training_package.__file__).parent

#: Functions outside a model's ``__init__`` that build a model's layers for it (on the CPU).
LAYER_BUILDERS = {"models.py": {"_conv"}}
#: Timings: the only record fields that differ between two runs of a cell.
TIMINGS = {"train_seconds", "precompute_seconds", "time_to_accuracy_seconds", "crf_seconds"}

GRAPH = {"kind": "training", "seed": 0, "training": {
    "variants": [{"family": ["gcn", "gin"], "depth": [2], "width": [8],
                  "skip": ["residual", "jk"], "norm": ["batch"]},
                 {"family": ["sgc"], "depth": [2]}],
    "recipes": [{"name": "adam", "optimizer": "adam", "lr": 0.05, "epochs": 8,
                 "labels": {"per_class": 2}},
                {"name": "sgd", "optimizer": "sgd", "lr": 0.1, "epochs": 8,
                 "schedule": "cosine", "labels": {"fraction": 0.5, "balanced": False}}],
    "datasets": [{"name": "karate"}], "seeds": 1, "curve_points": 4}}
IMAGE = {"kind": "training", "seed": 0, "training": {"workload": "image", "seeds": 1, "image": {
    "variants": {"models": [{"name": "resnet_small", "options": {"width": 4}}],
                 "inputs": [{"kind": "downsampled", "size": 8},
                            {"kind": "frequency", "channels": 12, "selection": "gate",
                             "gate_penalty": 0.01}]},
    "recipes": [{"name": "moex", "epochs": 2, "batch_size": 16,
                 "augment": [{"name": "moex", "params": {"probability": 1.0}}]},
                {"name": "mix", "epochs": 2, "batch_size": 16,
                 "augment": [{"name": "mixup"}, {"name": "cutmix",
                                                 "params": {"probability": 1.0}}]}],
    "datasets": [{"name": "shapes32", "options": {"num_per_class": 4, "size": 16}}]}}}
HYPERSPECTRAL = {"kind": "training", "seed": 0, "training": {
    "workload": "hyperspectral", "seeds": 1, "curve_points": 4, "hyperspectral": {
        "scene": {"height": 12, "width": 12, "bands": 40, "classes": 3}, "scene_seed": 1,
        "models": ["cnn", "gan", "gan_crf"], "labels_per_class": [3], "components": 8,
        "epochs": 6, "batch": 8}}}
SPECS = {"graph": GRAPH, "image": IMAGE, "hyperspectral": HYPERSPECTRAL}


pytestmark = pytest.mark.usefixtures("one_thread")


def context_tensors(ctx: Any) -> dict[str, torch.Tensor]:
    """Every tensor a training context holds, by a readable name."""
    if hasattr(ctx, "graphs"):
        return {f"{label}.{key}": value for label, graph in ctx.graphs.items()
                for key, value in graph.data.items() if isinstance(value, torch.Tensor)}
    if hasattr(ctx, "datasets"):
        return {f"{label}.{name}": getattr(data, name) for label, data in ctx.datasets.items()
                for name in ("x_train", "y_train", "x_test", "y_test")}
    return {"cube": ctx.prepared.cube, "patches": ctx.prepared.patches}


# ----------------------------------------------------------------------------- to_device


@pytest.mark.parametrize("workload", list(SPECS))
def test_to_device_copies_every_tensor_of_the_context_and_changes_nothing_else(
        workload: str) -> None:
    ctx = ENGINE.prepare(parse_spec(SPECS[workload])).context
    moved = ENGINE.to_device(ctx, META)
    placed = context_tensors(moved)
    assert len(placed) >= 2 and {t.device for t in placed.values()} == {META}, placed.keys()
    assert type(moved) is type(ctx) and moved is not ctx and moved.threads == ctx.threads
    assert {t.device for t in context_tensors(ctx).values()} == {CPU}  # the given one: intact
    # Already there: nothing is copied (on the CPU: the very same tensors).
    again = ENGINE.to_device(moved, META)
    assert all(a is b for a, b in zip(context_tensors(again).values(), placed.values(),
                                      strict=True))
    same = ENGINE.to_device(ctx, CPU)
    assert all(a is b for a, b in zip(context_tensors(same).values(),
                                      context_tensors(ctx).values(), strict=True))


def test_the_zoos_cached_datasets_stay_on_the_cpu() -> None:
    """A PyG ``Data.to`` moves in place: the graph is copied before it moves."""
    ctx = ENGINE.prepare(parse_spec(GRAPH)).context
    cached = load_dataset(DatasetSpec(name="karate"), task="graph")
    assert ctx.graphs["karate"] is cached
    moved = ENGINE.to_device(ctx, META)
    assert moved.graphs["karate"].data.x.device == META
    assert cached.data.x.device == CPU and cached.data.edge_index.device == CPU
    images = ENGINE.prepare(parse_spec(IMAGE)).context
    cached_images = load_dataset(DatasetSpec(name="shapes32", options={"num_per_class": 4,
                                                                       "size": 16}))
    assert images.datasets["shapes32"] is cached_images
    assert ENGINE.to_device(images, META).datasets["shapes32"].x_train.device == META
    assert images.datasets["shapes32"].x_train.device == CPU


def test_to_device_refuses_what_is_no_training_context() -> None:
    with pytest.raises(TypeError, match="not a training context"):
        ENGINE.to_device(object(), CPU)


# ----------------------------------------------------------------------------- factories


def test_every_torch_factory_in_the_training_code_names_its_device() -> None:
    missing = package_default_device_calls(PACKAGE, LAYER_BUILDERS)
    assert not missing, "tensors created on the default device:\n" + "\n".join(missing)


# ----------------------------------------------------------------------------- shards


def _records(context: Any, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = ENGINE.run_shard(context, trials)
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in out]


def _exact(record: dict[str, Any]) -> str:
    """The record without its wall times, as text: floats exactly (``repr``), NaN equal to
    NaN."""
    curve = {k: v for k, v in record["curve"].items() if k != "wall_seconds"}
    return repr(sorted({**record, "curve": sorted(curve.items())}.items()))


@pytest.mark.parametrize("workload", list(SPECS))
def test_shards_on_the_moved_context_give_the_same_records(workload: str) -> None:
    spec = parse_spec(SPECS[workload])
    prepared = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, prepared.meta, 0, [])
    moved = on_device("training", ShardContext(prepared.context))
    assert moved is not prepared.context
    here = _records(prepared.context, trials)
    recorder = DefaultDeviceCalls(PACKAGE)
    with recorder:  # every factory the cells call names its device
        there = _records(moved, trials)
    assert recorder.calls == [], recorder.calls
    assert recorder.seen > 0  # the shard's own factory calls were watched
    assert len(here) == len(trials) >= 3
    assert {r["status"] for r in here} <= {"completed", "target_not_reached", "target_reached"}
    for a, b in zip(here, there, strict=True):
        assert a["checkpoint"] == b["checkpoint"]  # bit-identical weights
        assert _exact(a) == _exact(b)
        state = load_safetensors(b["checkpoint"])
        assert state and {t.device for t in state.values()} == {CPU}
