r"""Knowledge distillation of a smaller student from the teacher's logits.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015 (the
distillation family of Cheng et al.'s compression survey, 2017). The student (logits ``z_s``)
is trained against the frozen teacher's logits ``z_t`` and the labels ``y``:

.. math:: \mathcal{L} = \alpha T^2 \, \mathrm{KL}\big(\operatorname{softmax}(z_t / T)
          \,\|\, \operatorname{softmax}(z_s / T)\big) + (1 - \alpha)\,
          \mathrm{CE}(z_s, y)

with ``T = temperature`` and ``α = alpha``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.transforms._common import Ratio, TransformParams, is_graph
from faultlab.workers.transforms._training import distillation_loss, train
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(TransformParams):
    """Parameters of ``distill``."""

    width_ratio: Ratio = 0.5
    """Channels the slimmed student keeps, in (0, 1] (ignored with ``student``)."""
    student: str | None = Field(None, min_length=1, max_length=100)
    """A zoo model name to train as the student instead of the slimmed teacher."""
    student_options: dict[str, Any] = Field(default_factory=dict)
    """Options of the zoo ``student``."""
    init: Literal["random", "inherit"] = "random"
    """Re-initialise the slimmed student, or keep the teacher's surviving weights."""
    epochs: float = Field(10.0, gt=0.0, le=10_000.0)
    """Passes over the training split (fractions allowed)."""
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    """Adam learning rate."""
    batch_size: float = Field(64, ge=1, le=65_536)
    """Images per step (graphs train full batch); truncated to an integer."""
    temperature: float = Field(4.0, gt=0.0, le=100.0)
    """Softening temperature T of both softmaxes."""
    alpha: float = Field(0.9, ge=0.0, le=1.0)
    """Weight α of the soft (teacher) term; ``1 − α`` weighs the label cross-entropy."""


def reinitialize(model: nn.Module, seed: int) -> None:
    """Fresh random weights (each module's own ``reset_parameters``), deterministic in seed."""
    torch.manual_seed(seed)
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and module is not model:
            reset()


def make_student(
    teacher: nn.Module, data: Any, *, width_ratio: float, student: str | None,
    student_options: dict[str, Any], init: str, seed: int,
) -> nn.Module:
    if student is not None:
        from faultlab.spec import ModelSpec
        from faultlab.workers.zoo import build_model

        torch.manual_seed(seed)
        try:
            spec = ModelSpec.model_validate({"name": student, "options": student_options})
            return build_model(spec, data)
        except SpecError as exc:
            raise SpecError("student", exc.problem, exc.allowed) from None
    from faultlab.workers.transforms.channel_pruning import prune_channels

    slim = copy.deepcopy(teacher)
    if width_ratio < 1.0:
        try:
            slim = prune_channels(slim, data, norm=2, sparsity=1.0 - width_ratio, max_ratio=1.0)
        except SpecError as exc:
            raise SpecError(
                "student", f"the teacher cannot be slimmed ({exc.problem}); name a zoo student"
            ) from None
    if init == "random":
        reinitialize(slim, seed)
    return slim


@TRANSFORMS.register(
    "distill", params=Params,
    citation="Hinton et al., 2015: α T² KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) CE(z_s, y)",
)
def distill(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """Knowledge distillation: a student is trained on the loss of the module docstring with
    the (frozen) teacher's logits, Adam for ``epochs`` over the training split (graphs: full
    batch, the soft term on every node, the hard term on labelled nodes).

    The student is the teacher's own architecture slimmed to ``width_ratio`` of its channels
    (Torch-Pruning, every coupled group uniformly; ``init: random`` re-initialises it,
    ``inherit`` keeps the teacher's surviving weights), or the zoo model ``student`` built
    with ``student_options``. Returns the student."""
    teacher = model.eval()
    student_model = make_student(
        teacher, data, width_ratio=params.width_ratio, student=params.student,
        student_options=dict(params.student_options), init=params.init, seed=seed,
    )
    with torch.no_grad():
        if is_graph(data):
            teacher_logits = teacher(data.data.x, data.data.edge_index)
        else:
            x, _ = data.split("train")
            teacher_logits = torch.cat([teacher(x[i : i + 512]) for i in range(0, len(x), 512)])
    loss = distillation_loss(teacher_logits, params.temperature, params.alpha, is_graph(data))
    train(
        student_model, data, epochs=params.epochs, lr=params.lr,
        batch_size=int(params.batch_size), seed=seed, keep_zeros=False, loss_fn=loss,
    )
    return student_model.eval()
