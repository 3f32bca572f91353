"""Where a training campaign's shards run: the task's device (the CPU when Ray gave none).

:meth:`~faultlab.workers.training.engine.TrainingEngine.to_device` calls :func:`context_on`
once per worker: the workload's data — the graphs (``graph``), the image tensors (``image``),
the scene's cube and patches (``hyperspectral``) — are *copied* to the device; the prepared
context and the zoo's cached datasets stay on the CPU untouched (a PyG ``Data.to`` moves in
place, so a graph is shallow-copied first). Each cell then works on the device its data are
on:

* models are built on the CPU under the cell's ``torch.manual_seed(seed)`` — the same initial
  weights on every worker — and then moved; optimizers are made over the moved parameters;
* random draws come from CPU generators (``torch.Generator`` / numpy) and their results are
  moved, so splits, batch orders, augmentations, GAN noise and frequency-gate noise are the
  same on every worker (dropout inside a model draws from the device's own generator, which
  ``torch.manual_seed`` seeds as well: the same on every GPU worker of a kind);
* checkpoints are CPU tensors (:func:`checkpoint_bytes`), so ``model: {from_campaign}``
  loads them on any machine; curves and live points are Python floats as before.

On the CPU nothing is copied and every result is bit-identical to the unmoved context's. On
a GPU the float arithmetic differs from the CPU's (and PyG's scatter reductions and a few
cuDNN kernels have no deterministic CUDA version; ``configure_device`` warns about them), so
GPU cells agree with CPU cells closely, not bit for bit.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from faultlab.workers.zoo import GraphData, ImageData


def graph_on(graph: GraphData, device: torch.device) -> GraphData:
    """``graph`` with its PyG ``Data`` on ``device`` (a shallow copy whose tensors are moved:
    ``Data.to`` works in place, and the given graph is the zoo's cached one); itself when it
    is there already."""
    if graph.data.y.device == device:
        return graph
    return replace(graph, data=copy.copy(graph.data).to(device))


def images_on(data: ImageData, device: torch.device) -> ImageData:
    """``data`` with its four tensors on ``device`` (a copy); itself when already there."""
    if data.x_train.device == device:
        return data
    return replace(data, x_train=data.x_train.to(device), y_train=data.y_train.to(device),
                   x_test=data.x_test.to(device), y_test=data.y_test.to(device))


def context_on(ctx: Any, device: torch.device) -> Any:
    """A copy of a training context (graph, image or hyperspectral) with its data on
    ``device``; ``ctx`` itself is not changed."""
    from faultlab.workers.training.engine import TrainingContext
    from faultlab.workers.training.hyperspectral.workload import HsiContext
    from faultlab.workers.training.workloads.image import ImageContext

    if isinstance(ctx, TrainingContext):
        return replace(ctx, graphs={k: graph_on(g, device) for k, g in ctx.graphs.items()})
    if isinstance(ctx, ImageContext):
        return replace(ctx, datasets={k: images_on(d, device) for k, d in ctx.datasets.items()})
    if isinstance(ctx, HsiContext):
        prepared = ctx.prepared
        if prepared.patches.device != device:
            prepared = replace(prepared, cube=prepared.cube.to(device),
                               patches=prepared.patches.to(device))
        return replace(ctx, prepared=prepared)
    raise TypeError(f"not a training context: {type(ctx).__name__}")


def checkpoint_bytes(model: nn.Module) -> bytes:
    """``model``'s ``state_dict`` as safetensors bytes of CPU tensors (loadable anywhere)."""
    return save_safetensors(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})


__all__ = ["checkpoint_bytes", "context_on", "graph_on", "images_on"]
