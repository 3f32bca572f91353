"""Model extraction by distillation / retraining (Hinton, Vinyals & Dean 2015; as a watermark
removal attack in the Watermark-Robustness-Toolbox, Lukas et al., IEEE S&P 2022): a fresh
surrogate of the same architecture with the task's K outputs is trained from scratch on the
attacker's share of the training data (default one third), labelled by the stolen model's
predictions over the K task classes (``labels: stolen``; its softened probabilities when
``temperature > 0``) or by the attacker's own labels (``labels: true``). Strength = training
epochs of the surrogate.

Implements: min T²·KL(softmax(z/T) ‖ softmax(z_s/T)) over the attacker's data.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from faultlab.workers.watermark.attacks.base import (
    ATTACKS,
    AttackContext,
    Attacked,
    train_epochs,
)
from faultlab.workers.watermark.catalog import AttackParams, Strength
from faultlab.workers.watermark.embedding import logits


class DistillParams(AttackParams):
    """Parameters of distillation."""

    strength = Strength(
        tier="training",
        knob="surrogate training epochs",
        low=1,
        high=1000,
        stronger="higher",
        defaults=(2, 5, 10, 20),
        integer=True,
    )

    labels: Literal["stolen", "true"] = "stolen"
    """Train the surrogate on the stolen model's predictions (default) or the attacker's labels."""
    temperature: float = Field(0.0, ge=0.0, le=100.0)
    """0: hard labels; > 0: match the stolen model's softened probabilities (Hinton et al.)."""
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    """Adam learning rate of the surrogate."""
    batch_size: int = Field(64, ge=1, le=65536)
    """Attacker samples per training step."""


@ATTACKS.register(
    "distill",
    params=DistillParams,
    citation="Hinton et al. 2015; Lukas et al., IEEE S&P 2022: "
    "min T²·KL(softmax(z/T) ‖ softmax(z_s/T)) over the attacker's data",
)
def distill(
    model: nn.Module, strength: float, params: DistillParams, ctx: AttackContext
) -> Attacked:
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
        surrogate,
        x,
        targets,
        epochs=int(strength),
        lr=params.lr,
        batch_size=params.batch_size,
        gen=ctx.generator(42),
        temperature=params.temperature,
    )
    return Attacked(surrogate)
