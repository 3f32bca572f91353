"""GPU paths: the campaign context on the task's GPU, TF32 off by default, batched faults on
the GPU (weights, activations, PyG graphs) agreeing trial by trial with the CPU sequential path,
sparsity cells transformed and timed on the GPU, sampling's improve cycle behind the device
boundary, a watermark campaign embedded and attacked on the GPU agreeing with the CPU, a
training campaign of each workload trained on the GPU agreeing with the CPU. Skipped where CUDA
is absent."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from faultlab.spec import parse_spec
from faultlab.workers.engine import configure_device
from faultlab.workers.faults.engine import FaultContext, FaultEngine
from tests.marks import requires

pytestmark = requires(
    torch.cuda.is_available(),
    reason="CUDA is not available on this machine: the GPU paths need an NVIDIA GPU",
)

ENGINE = FaultEngine()
CUDA = torch.device("cuda", 0)


def _spec(dtype: str = "fp32", batch: Any = 16) -> Any:
    return parse_spec({"kind": "faults", "seed": 4, "model": {"name": "resnet_small"},
                       "dataset": {"name": "digits", "size": 128},
                       "faults": {"target": "weight", "sampling": "uniform", "trials": 64,
                                  "dtypes": [dtype], "bits": [0, 20, 23, 27, 30, 31]},
                       "execution": {"batch_faults": batch}})


def test_context_moves_to_the_gpu_and_tf32_stays_off() -> None:
    configure_device(CUDA, allow_tf32=False)
    assert not torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cudnn.allow_tf32 and torch.backends.cudnn.deterministic
    prepared = ENGINE.prepare(_spec())
    ctx: FaultContext = ENGINE.to_device(prepared.context, CUDA)
    wl = next(iter(ctx.workloads.values()))
    assert next(wl.models["fp32"].parameters()).device.type == "cuda"
    assert wl.golden[("fp32", "none")].output.device.type == "cuda"


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_gpu_batched_agrees_with_cpu_sequential(dtype: str) -> None:
    configure_device(CUDA, allow_tf32=False)
    spec = _spec(dtype)
    cpu = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, cpu.meta, 0, [])
    sequential = ENGINE.run_shard(
        FaultContext(cpu.context.params, cpu.context.workloads, "off"), trials)
    gpu_ctx = ENGINE.to_device(ENGINE.prepare(spec).context, CUDA)
    on_gpu = ENGINE.run_shard(gpu_ctx, trials)
    agree = sum(a["outcome"] == b["outcome"] for a, b in zip(sequential, on_gpu, strict=True))
    # GPU and CPU kernels round differently: classes agree, bits need not
    assert agree / len(trials) >= 0.95
    replayed = ENGINE.run_shard(gpu_ctx, trials[:8])
    assert all(ENGINE.outcomes_equal(a, b) for a, b in zip(on_gpu, replayed, strict=False))


@pytest.mark.parametrize("target,model,dataset", [
    ("activation", "digits_cnn", "digits"),
    ("weight", "gcn", "karate"),
    ("aggregation", "gcn", "karate"),
])
def test_gpu_batched_values_and_graphs_agree_with_cpu_sequential(
        target: str, model: str, dataset: str) -> None:
    configure_device(CUDA, allow_tf32=False)
    spec = parse_spec({"kind": "faults", "seed": 5, "model": {"name": model},
                       "dataset": {"name": dataset, "size": 128},
                       "faults": {"target": target, "sampling": "uniform", "trials": 48,
                                  "bits": [0, 20, 23, 27, 30, 31]},
                       "execution": {"batch_faults": 16}})
    cpu = ENGINE.prepare(spec)
    trials = ENGINE.plan(spec, cpu.meta, 0, [])
    sequential = ENGINE.run_shard(
        FaultContext(cpu.context.params, cpu.context.workloads, "off"), trials)
    on_gpu = ENGINE.run_shard(ENGINE.to_device(ENGINE.prepare(spec).context, CUDA), trials)
    agree = sum(a["outcome"] == b["outcome"] for a, b in zip(sequential, on_gpu, strict=True))
    assert agree / len(trials) >= 0.95


def test_sparsity_cells_run_and_are_timed_on_the_gpu() -> None:
    from faultlab.workers.sparsity.engine import SparsityEngine

    configure_device(CUDA, allow_tf32=False)
    engine = SparsityEngine()
    spec = parse_spec({"kind": "sparsity", "seed": 3, "model": {"name": "digits_cnn"},
                       "dataset": {"name": "digits", "size": 200},
                       "sparsity": {"methods": ["magnitude", "channel_l1"],
                                    "schedules": ["one_shot"], "levels": {"values": [0.5]},
                                    "seeds": 1, "finetune": {"epochs": 0.1, "batch_size": 32},
                                    "low_rank": {"rank_ratios": [0.5]},
                                    "latency": {"repeats": 2, "warmup": 1}}})
    prepared = engine.prepare(spec)
    trials = engine.plan(spec, prepared.meta, 0, [])
    cpu = engine.run_shard(prepared.context, trials)
    moved = engine.to_device(engine.prepare(spec).context, CUDA)
    assert moved.device.startswith("cuda")
    gpu = engine.run_shard(moved, trials)
    for a, b in zip(cpu, gpu, strict=True):
        assert "error" not in b, b.get("error")
        if "latency_seconds" in b:
            assert b["latency_device"].startswith("cuda")
        assert abs(a["correct"] - b["correct"]) <= 0.05 * a["total"]


def test_sampling_improve_cycle_runs_on_the_gpu() -> None:
    from faultlab.workers.sampling.engine import SamplingEngine

    configure_device(CUDA, allow_tf32=False)
    engine = SamplingEngine()
    spec = parse_spec({"kind": "sampling", "seed": 0, "sampling": {
        "oracles": ["msp", "mc_dropout"], "mode": "improve", "budget": 30,
        "pool": {"shifts": [{"name": "clean"}]},
        "samplers": [{"name": "srs"}, {"name": "pps", "oracle": "mc_dropout"}],
        "improve": {"iterations": 1, "repetitions": 1, "epochs": 1}}})
    prepared = engine.prepare(spec)
    moved = engine.to_device(prepared.context, CUDA)
    assert next(moved.model.parameters()).device.type == "cuda"
    trials = engine.plan(spec, prepared.meta, 0, [])
    for result in engine.run_shard(moved, trials):
        assert [row["iteration"] for row in result["rows"]] == [0, 1]
        assert all(0.0 <= row["estimate"] <= 1.0 for row in result["rows"])


#: Every watermark attack at one mid strength (training attacks: one epoch).
WATERMARK_ATTACKS = {"bandstop": 0.2, "bitflip": 1e-5, "blur": 0.8, "distill": 1,
                     "fine_prune": 0.5, "ftal": 1, "ftll": 1, "gaussian_noise": 0.1,
                     "input_quantization": 3, "jpeg": 30, "lowpass": 0.5, "prune": 0.6,
                     "rtal": 1, "rtll": 1, "weight_noise": 0.4, "weight_quantization": 4}


def watermark_on(device: torch.device, home: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small watermark campaign (every trial type, every attack) run on the CPU context and on
    the context moved to ``device``, each in its own fresh cache so the embeddings are computed
    on that device; checks placement and that both agree on the outcome classes."""
    from faultlab.workers.engine import TrialRecord
    from faultlab.workers.watermark import cache
    from faultlab.workers.watermark.engine import WatermarkEngine
    from faultlab.workers.watermark.runs import WatermarkContext, watermarked

    engine = WatermarkEngine()
    spec = parse_spec({"kind": "watermark", "seed": 0,
                       "model": {"name": "digits_cnn", "options": {"epochs": 5}},
                       "dataset": {"name": "digits"},
                       "watermark": {"schemes": [{"name": "frequency"}, {"name": "adi"}],
                                     "seeds": 1, "trigger_size": 50, "embed": {"epochs": 10},
                                     "sensitivity": {"probe_size": 32, "repeats": 1},
                                     "verification": {"null_models": 1},
                                     "attacks": [{"name": n, "strengths": [s],
                                                  **({"params": {"epochs": 1}}
                                                     if n == "fine_prune" else {})}
                                                 for n, s in WATERMARK_ATTACKS.items()]}})
    prepared = engine.prepare(spec)
    moved: WatermarkContext = engine.to_device(prepared.context, device)
    held = [moved.data.x_train, moved.data.y_train, moved.data.x_test, moved.data.y_test,
            *(t for m, _ in moved.base.values() for t in (*m.parameters(), *m.buffers()))]
    assert {t.device.type for t in held} == {device.type}
    assert {p.device.type for m, _ in prepared.context.base.values()
            for p in m.parameters()} == {"cpu"}  # the CPU context is not moved in place
    reports, results = [], []
    for name, ctx in [("cpu", prepared.context), ("device", moved)]:
        monkeypatch.setenv("FAULTLAB_HOME", str(home / name))
        cache.forget_memory()
        records: list[TrialRecord] = []
        round_index = 0
        while trials := engine.plan(spec, prepared.meta, round_index, list(records)):
            out = engine.run_shard(ctx, trials)
            records += [TrialRecord(f"{round_index}-{i}", t, r)
                        for i, (t, r) in enumerate(zip(trials, out, strict=True))]
            round_index += 1
        reports.append(engine.aggregate(spec, prepared.meta, records))
        results.append(records)
        embed = next(r.trial for r in records if r.trial["type"] == "embed")
        model, key, _ = watermarked(ctx, embed)
        assert {p.device.type for p in model.parameters()} == {ctx.data.x_train.device.type}
        assert key.triggers.device == key.labels.device == ctx.data.x_train.device
    cpu, on_device = results
    assert [r.trial for r in cpu] == [r.trial for r in on_device]
    assert all(r.result.get("embed_source") != "disk" for r in on_device)
    close = [abs(a.result["test_correct"] - b.result["test_correct"]) <= 0.05 * a.result["test_n"]
             for a, b in zip(cpu, on_device, strict=True) if "test_correct" in a.result]
    assert sum(close) >= 0.9 * len(close), close
    embeds = [report.tables["embeddings"]["verified"].tolist() for report in reports]
    assert embeds[0] == embeds[1] and all(embeds[0])
    cells = [report.tables["cells"]["verified"].tolist() for report in reports]
    # GPU and CPU kernels round differently: ownership decisions agree, match counts need not
    agree = sum(a == b for a, b in zip(*cells, strict=True))
    assert len(cells[0]) == 2 * len(WATERMARK_ATTACKS) and agree >= 0.8 * len(cells[0])


def test_watermark_shard_runs_on_the_gpu_and_agrees_with_the_cpu(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    configure_device(CUDA, allow_tf32=False)
    watermark_on(CUDA, tmp_path, monkeypatch)



#: Relative tolerances (step-0 loss, final loss) of a device cell against its CPU run: graph
#: and hyperspectral CNN cells start from the same weights, split and draws, so their step-0
#: losses agree to rounding; image cells' first point is an epoch's mean; the GAN's
#: discriminator has dropout, drawn by the device's own generator (its final loss: finite).
TRAINING_TOLERANCES = {"graph": (1e-4, 0.05), "cnn": (1e-4, 0.1), "image": (0.1, 0.25),
                       "gan": (0.25, math.inf), "gan_crf": (0.25, math.inf)}


def training_on(device: torch.device) -> None:
    """A small campaign of each training workload (graph GNNs, image CNNs with MoEx / mixup /
    CutMix and a gated frequency input, hyperspectral CNN / GAN / GAN + CRF) run on the CPU
    context and on the context moved to ``device``: the data move (the CPU context does not),
    every module a cell runs has its weights and inputs on ``device``, the records keep their
    shape, values agree with the CPU's up to GPU rounding (:data:`TRAINING_TOLERANCES`), and
    the checkpoints are CPU tensors that load into the cell's ``training:<family>`` model on
    the CPU (what ``model: {from_campaign}`` does)."""
    from safetensors.torch import load as load_safetensors

    from faultlab.workers.training.engine import TrainingEngine
    from faultlab.workers.training.workloads import workload_of_trial
    from tests.workers.training.test_device import SPECS, context_tensors

    engine, seen = TrainingEngine(), set()

    def placement(module: torch.nn.Module, args: Any) -> None:
        seen.update(t.device.type for t in (*module.parameters(recurse=False), *args)
                    if isinstance(t, torch.Tensor))

    for name, raw in SPECS.items():
        spec = parse_spec(raw)
        prepared = engine.prepare(spec)
        moved = engine.to_device(prepared.context, device)
        assert {t.device.type for t in context_tensors(moved).values()} == {device.type}
        trials = engine.plan(spec, prepared.meta, 0, [])
        cpu = engine.run_shard(prepared.context, trials)
        seen.clear()
        handle = torch.nn.modules.module.register_module_forward_pre_hook(placement)
        try:
            there = engine.run_shard(moved, trials)
        finally:
            handle.remove()
        assert seen == {device.type}, (name, seen)
        assert {t.device.type for t in context_tensors(prepared.context).values()} == {"cpu"}
        for trial, a, b in zip(trials, cpu, there, strict=True):
            assert b["status"] == a["status"] != "error" and b["steps"] == a["steps"], (name, b)
            assert sorted(b) == sorted(a) and b["curve"]["step"] == a["curve"]["step"]
            first, final = TRAINING_TOLERANCES[
                trial["variant"]["name"] if name == "hyperspectral" else name]
            start_a, start_b = a["curve"]["loss"][0], b["curve"]["loss"][0]
            assert abs(start_a - start_b) <= first * max(1.0, abs(start_a)), (trial, a, b)
            assert math.isfinite(b["final_loss"])
            assert abs(a["final_loss"] - b["final_loss"]) <= final * max(1.0, a["final_loss"])
            state = load_safetensors(b["checkpoint"])
            assert {t.device.type for t in state.values()} == {"cpu"}
            method, ref = workload_of_trial(trial), workload_of_trial(trial).reference(trial)
            data = (prepared.context.graphs[trial["dataset"]] if name == "graph" else
                    prepared.context.datasets[trial["dataset"]] if name == "image" else None)
            model = method.build_model(ref["name"].split(":", 1)[1], ref["options"], data,
                                       "model")
            model.load_state_dict(state)  # a device cell's checkpoint, loaded on the CPU


def test_training_shards_run_on_the_gpu_and_agree_with_the_cpu() -> None:
    configure_device(CUDA, allow_tf32=False)
    training_on(CUDA)


def test_channel_reexecution_on_the_gpu_equals_full_forwards(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-filter path on cuDNN: where its check passes, outputs equal the full forward
    bit for bit; where it fails (another kernel, another order), the layer falls back."""
    from faultlab.workers.faults import channel as channel_mod
    from faultlab.workers.faults.models import FAULT_MODELS

    monkeypatch.setattr(channel_mod, "FASTER", float("inf"))
    configure_device(CUDA, allow_tf32=False)
    spec = _spec(batch="off")
    prepared = ENGINE.prepare(spec)
    ctx = ENGINE.to_device(prepared.context, CUDA)
    wl = next(iter(ctx.workloads.values()))
    bitflip = FAULT_MODELS.get("bitflip").impl()
    for trial in ENGINE.plan(spec, prepared.meta, 0, [])[:32]:
        fast = wl.faulty_output("fp32", "none", trial["faults"], bitflip)
        full = wl.faulty_output("fp32", "none", trial["faults"], bitflip, suffix=False)
        assert torch.equal(fast.isnan(), full.isnan())
        assert torch.equal(fast.nan_to_num(0.0), full.nan_to_num(0.0)), trial["faults"]
    runner = wl._channel[("fp32", "none")]
    assert runner._checked  # the path was tried on the GPU's kernels
