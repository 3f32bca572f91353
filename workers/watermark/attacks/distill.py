"""Model extraction by distillation / retraining (Hinton, Vinyals & Dean 2015; as a watermark
removal attack in the Watermark-Robustness-Toolbox, Lukas et al., IEEE S&P 2022): a fresh
surrogate of the same architecture with the task's K outputs is trained from scratch on the
attacker's share of the training data (default one third), labelled by the stolen model's
predictions over the K task classes (``labels: stolen``; its softened probabilities when
``temperature > 0``) or by the attacker's own labels (``labels: true``). Strength = training
epochs of the surrogate."""

from __future__ import annotations

import torch
from torch import nn

from faultlab.workers.watermark.attacks.base import (
    AttackContext,
    Attacked,
    register_attack,
    train_epochs,
)
from faultlab.workers.watermark.catalog import DistillParams
from faultlab.workers.watermark.embedding import logits


@register_attack("distill")
def distill(model: nn.Module, strength: float, params: DistillParams, ctx: AttackContext) -> Attacked:
    """Trains a fresh K-class surrogate for ``strength`` epochs on the attacker's data."""
    x, y = ctx.attacker_data()
    targets: torch.Tensor = y
    if params.labels == "stolen":
        stolen = logits(model, x)[:, : ctx.num_classes]
        if params.temperature > 0:
            targets = torch.softmax(stolen / params.temperature, dim=1)
        else:
            targets = stolen.argmax(1)
    surrogate = ctx.build_fresh(ctx.num_classes)  # seeded by the context
    train_epochs(
        surrogate, x, targets, epochs=int(strength), lr=params.lr, batch_size=params.batch_size,
        gen=ctx.generator(42), temperature=params.temperature,
    )
    return Attacked(surrogate)
