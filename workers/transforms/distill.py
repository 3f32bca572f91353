"""Knowledge distillation of a smaller student from the teacher's logits."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.transforms._common import (
    check_choice,
    check_keys,
    check_number,
    check_ratio,
    is_graph,
)
from faultlab.workers.transforms._training import distillation_loss, train
from faultlab.workers.transforms.registry import register_transform

PARAMS = {
    "width_ratio", "student", "student_options", "init", "epochs", "lr", "batch_size",
    "temperature", "alpha",
}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_ratio(params, "width_ratio", default_ok=True)
    student = params.get("student")
    if student is not None and (not isinstance(student, str) or not student):
        raise SpecError("student", f"must be a zoo model name, got {student!r}")
    if not isinstance(params.get("student_options", {}), dict):
        raise SpecError("student_options", "must be a mapping of model options")
    check_choice(params, "init", ["random", "inherit"])
    check_number(params, "epochs", 0, 10_000, open_low=True)
    check_number(params, "lr", 0, 10, open_low=True)
    check_number(params, "batch_size", 1, 65_536)
    check_number(params, "temperature", 0, 100, open_low=True)
    check_number(params, "alpha", 0, 1)


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
            return build_model(ModelSpec.model_validate({"name": student, "options": student_options}), data)
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


@register_transform("distill", validate=validate)
def distill(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    width_ratio: float = 0.5,
    student: str | None = None,
    student_options: dict[str, Any] | None = None,
    init: str = "random",
    epochs: float = 10.0,
    lr: float = 3e-3,
    batch_size: int = 64,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> nn.Module:
    """Knowledge distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
    Network", 2015; the distillation family of Cheng et al.'s survey, 2017): a student is
    trained on ``α · T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1 − α) · CE(z_s, y)`` with
    the (frozen) teacher's logits ``z_t``, Adam for ``epochs`` over the training split
    (graphs: full batch, the soft term on every node, the hard term on labelled nodes).

    The student is the teacher's own architecture slimmed to ``width_ratio`` of its channels
    (Torch-Pruning, every coupled group uniformly; ``init: random`` re-initialises it,
    ``inherit`` keeps the teacher's surviving weights), or the zoo model ``student`` built
    with ``student_options``. Returns the student."""
    teacher = model.eval()
    student_model = make_student(
        teacher, data, width_ratio=width_ratio, student=student,
        student_options=dict(student_options or {}), init=init, seed=seed,
    )
    with torch.no_grad():
        if is_graph(data):
            teacher_logits = teacher(data.data.x, data.data.edge_index)
        else:
            x, _ = data.split("train")
            teacher_logits = torch.cat([teacher(x[i : i + 512]) for i in range(0, len(x), 512)])
    loss = distillation_loss(teacher_logits, temperature, alpha, is_graph(data))
    train(
        student_model, data, epochs=epochs, lr=lr, batch_size=int(batch_size), seed=seed,
        keep_zeros=False, loss_fn=loss,
    )
    return student_model.eval()
