"""GPU paths: the campaign context on the task's GPU, TF32 off by default, batched faults on
the GPU (weights, activations, PyG graphs) agreeing trial by trial with the CPU sequential path,
sparsity cells transformed and timed on the GPU, sampling's improve cycle behind the device
boundary. Skipped where CUDA is absent."""

from __future__ import annotations

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
