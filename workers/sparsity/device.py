"""Where a sparsity campaign's shards run: the task's device (the CPU when Ray gave none).

The dense model, the data and the evaluation / latency inputs move once per worker, so cells
are transformed, fine-tuned, evaluated and timed on the device (the latency figures carry it,
with the batch size and dtype); the composed fault trials' context moves by the fault engine's
own rules. A campaign with an int8 cell stays on the CPU: torch.ao's quantized kernels are
CPU-only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from faultlab.workers.engine import move_to


def quantizes(params: Any) -> bool:
    """Whether any cell of the campaign runs an int8 (torch.ao, CPU-only) transform."""
    return bool(params.quantization.int8) or "int8_" in params.model_dump_json()


def context_on(ctx: Any, device: torch.device) -> Any:
    """``ctx`` (a ``SparsityContext``) on ``device``, its ``device`` field set."""
    if device.type != "cpu" and quantizes(ctx.params):
        return ctx
    moved = move_to(replace(ctx, faults=None), device)
    if ctx.faults is not None:
        from faultlab.workers import get_engine

        moved.faults = get_engine("faults").to_device(ctx.faults, device)
    moved.device = str(device)
    return moved
