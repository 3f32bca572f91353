"""GPU paths: the campaign context on the task's GPU, TF32 off by default, batched faults on
the GPU agreeing trial by trial with the CPU sequential path. Skipped where CUDA is absent."""

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
