"""The watermark engine's device path on the CPU (the GPU run: ``tests/gpu/test_gpu_paths.py``).

* ``to_device`` moves every tensor of the context — the data and each seed's trained model — to
  the device it is given (checked with ``meta``, a device other than the CPU), copies the models
  instead of moving the zoo's cached ones, and copies nothing that is there already;
* every tensor the watermark code creates names its device: statically (each torch factory call
  in ``workers/watermark`` has ``device=``) and at run time (no factory call made directly by the
  watermark code falls back to the default device while every attack, scheme and the sensitivity
  analysis run), and what the attacks and schemes return lives on the model's device;
* a campaign's shards give the very same results on the moved (CPU) context as on the unmoved
  one, embeddings recomputed (and no trial leaves a tensor to the default device).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import faultlab.workers.watermark as watermark_package
from faultlab.spec import parse_spec
from faultlab.workers import get_engine
from faultlab.workers.engine import TrialRecord
from faultlab.workers.tasks import ShardContext, on_device
from faultlab.workers.watermark import cache
from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, run_attack
from faultlab.workers.watermark.params import AttackSpec, EmbedParams
from faultlab.workers.watermark.runs import WatermarkContext
from faultlab.workers.watermark.schemes.base import SCHEMES, SchemeContext
from faultlab.workers.watermark.sensitivity import analyse
from faultlab.workers.zoo import ImageData, trained_model
from tests.device_checks import (
    DefaultDeviceCalls,
    package_default_device_calls,
)
from tests.workers.watermark import FAST

CPU, META = torch.device("cpu"), torch.device("meta")
ENGINE = get_engine("watermark")
PACKAGE = Path(watermark_package.__file__).parent

def _spec(**watermark: Any) -> Any:
    section = {"seeds": 1, "trigger_size": 30, "embed": {"epochs": 1},
               "sensitivity": {"probe_size": 32, "repeats": 1},
               "verification": {"null_models": 1}, **watermark}
    return parse_spec({"kind": "watermark", "seed": 0, "model": FAST.model_dump(mode="json"),
                       "dataset": {"name": "digits"}, "watermark": section})


def _tensors(ctx: WatermarkContext) -> Iterator[tuple[str, torch.Tensor]]:
    data = ctx.data
    for name in ("x_train", "y_train", "x_test", "y_test"):
        yield f"data.{name}", getattr(data, name)
    for seed, (model, _) in ctx.base.items():
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            yield f"base[{seed}].{name}", tensor


# ----------------------------------------------------------------------------- to_device


def test_to_device_moves_every_tensor_of_the_context_and_changes_nothing_else() -> None:
    spec = _spec(schemes=[{"name": "adi"}], seeds=2)
    ctx: WatermarkContext = ENGINE.prepare(spec).context
    moved: WatermarkContext = ENGINE.to_device(ctx, META)
    assert moved.device == "meta" and moved.torch_device == META
    placed = dict(_tensors(moved))
    assert len(placed) > 4 and {t.device for t in placed.values()} == {META}, placed.keys()
    # The CPU data stays beside the moved one; the given context and the zoo's cache are intact.
    assert moved.host is ctx.data and moved.host.x_train.device == CPU
    assert {t.device for _, t in _tensors(ctx)} == {CPU}
    for seed in ctx.base:
        cached = trained_model(FAST, ctx.data, seed=seed)[0]
        assert cached is ctx.base[seed][0] and next(cached.parameters()).device == CPU
        assert moved.base[seed][0] is not cached and moved.base[seed][1] == ctx.base[seed][1]
    # Already there: nothing is copied, and the CPU data is still the one kept beside.
    again: WatermarkContext = ENGINE.to_device(moved, META)
    assert again.host is ctx.data and again.data is moved.data
    assert all(again.base[s][0] is moved.base[s][0] for s in ctx.base)
    same: WatermarkContext = ENGINE.to_device(ctx, CPU)
    assert same.device == "cpu" and same.host_data is None and same.data is ctx.data
    assert all(same.base[s][0] is ctx.base[s][0] for s in ctx.base)


# ----------------------------------------------------------------------------- factories


def test_every_torch_factory_in_the_watermark_code_names_its_device() -> None:
    missing = package_default_device_calls(PACKAGE)
    assert not missing, "tensors created on the default device:\n" + "\n".join(missing)


def _on(device: torch.device, *tensors: torch.Tensor | None) -> bool:
    return all(t.device == device for t in tensors if t is not None)


def _module_on(model: nn.Module, device: torch.device) -> bool:
    return _on(device, *model.parameters(), *model.buffers())


def test_attacks_create_their_tensors_on_the_models_device(
    digits: ImageData, model: nn.Module, fresh: Callable[[int], nn.Module]
) -> None:
    ctx = AttackContext(digits, 0, 0.1, fresh, "watermark.attacks[0]")
    queries = digits.x_test[:8]
    strengths = {"bitflip": 1e-4, "input_quantization": 3, "jpeg": 30, "fine_prune": 0.5,
                 "weight_quantization": 3}
    epochs = {"distill", "ftal", "ftll", "rtal", "rtll"}
    chain = AttackSpec.model_validate({"name": "chain", "steps": [
        {"name": "prune"}, {"name": "ftll", "strength": 1}, {"name": "blur", "strength": 0.8}]})
    attacks = [(AttackSpec.model_validate(
        {"name": name, **({"params": {"epochs": 1}} if name == "fine_prune" else {})}),
        1 if name in epochs else strengths.get(name, 0.3)) for name in ATTACKS.names()]
    recorder = DefaultDeviceCalls(PACKAGE)
    with recorder:
        for attack, strength in [*attacks, (chain, 0.5)]:
            attacked = run_attack(model, attack, strength, ctx)
            assert _module_on(attacked.model, CPU), attack.name
            out = attacked.model(attacked.preprocess(queries) if attacked.preprocess else queries)
            assert out.device == CPU, attack.name
    assert recorder.calls == [], recorder.calls
    assert len(attacks) == 16


def test_schemes_and_sensitivity_create_their_tensors_on_the_context_device(
    digits: ImageData, model: nn.Module, fresh: Callable[[int], nn.Module]
) -> None:
    recorder = DefaultDeviceCalls(PACKAGE)
    with recorder:
        sens = analyse(model, digits.x_train[:16], digits.y_train[:16], epsilon=0.1,
                       repeats=1, clusters=3, seed=0)
    embed = EmbedParams.model_validate({"epochs": 1})
    cases: list[tuple[str, dict[str, Any]]] = [
        ("adi", {}), ("adi", {"pattern": "noise"}), ("frequency", {}), ("frequency", {"label": 3}),
        ("zhang", {}), ("zhang", {"kind": "noise"}), ("zhang", {"kind": "unrelated"}),
    ]
    for name, raw in cases:
        scheme, params = SCHEMES.get(name).impl(), SCHEMES.parse_params(name, raw)
        sctx = SchemeContext(data=digits, model=model, seed=1, trigger_size=20,
                             field="watermark.schemes[0]", sensitivity=lambda: sens,
                             build_fresh=fresh, scheme=name)
        with recorder:
            key = scheme.keygen(sctx, params)
            marked = scheme.embed(sctx, key, params, embed)
            evidence = scheme.verify(marked, key)
        assert sctx.device == CPU
        assert _on(CPU, key.triggers, key.labels, key.backup_labels, key.carriers), name
        assert _module_on(marked, CPU) and evidence.n == 20, name
    assert recorder.calls == [], recorder.calls


# ----------------------------------------------------------------------------- shards


def _run(spec: Any, meta: dict[str, Any], context: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    records: list[TrialRecord] = []
    round_index = 0
    while trials := ENGINE.plan(spec, meta, round_index, list(records)):
        out = ENGINE.run_shard(context, trials)
        pairs = zip(trials, out, strict=True)
        records += [TrialRecord(f"{round_index}-{i}", t, r) for i, (t, r) in enumerate(pairs)]
        results += out
        round_index += 1
    return results


def test_shards_on_the_moved_context_give_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(
        schemes=[{"name": "frequency"}, {"name": "zhang", "params": {"kind": "noise"}}],
        attacks=[{"name": "jpeg", "strengths": [30]}, {"name": "gaussian_noise",
                 "strengths": [0.1]}, {"name": "bitflip", "strengths": [1e-4]},
                 {"name": "fine_prune", "strengths": [0.5], "params": {"epochs": 1}},
                 {"name": "rtll", "strengths": [1]}, {"name": "distill", "strengths": [1]}],
    )
    prepared = ENGINE.prepare(spec)
    moved = on_device("watermark", ShardContext(prepared.context))
    assert moved is not prepared.context and moved.device == "cpu"
    runs, recorder = [], DefaultDeviceCalls(PACKAGE)
    for home, context in [("unmoved", prepared.context), ("moved", moved)]:
        monkeypatch.setenv("FAULTLAB_HOME", str(tmp_path / home))
        cache.forget_memory()  # embeddings and sensitivity maps are computed afresh each time
        with recorder:  # every trial type, runs.py included, names its devices
            runs.append(_run(spec, prepared.meta, context))
    assert recorder.calls == [], recorder.calls
    here, there = runs
    assert len(here) == 1 + 2 + 1 + 6 * 2
    assert {r.get("embed_source") for r in there} >= {"computed"}
    for a, b in zip(here, there, strict=True):
        assert ENGINE.outcomes_equal(a, b), (a, b)
