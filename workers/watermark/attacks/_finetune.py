"""The four fine-tuning attacks of Adi et al. (USENIX Security 2018, §5.2), sharing one loop:

* FTLL — fine-tune the last layer only;
* FTAL — fine-tune all layers;
* RTLL — re-initialise the last layer (with the task's K outputs: the attacker knows the task,
  not the extra watermark class), then train it only;
* RTAL — re-initialise the last layer, then train all layers.

Training uses the attacker's labelled share of the training split (``attacker_fraction``,
default one third) with Adam; strength = epochs. When only the last layer trains, the rest of
the network stays in eval mode (batch-norm statistics frozen).

Implements: θ ← θ − η ∇ CE(f_θ(x), y) over the attacker's data, for s epochs.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.watermark.attacks.base import AttackContext, Attacked, train_epochs
from faultlab.workers.watermark.catalog import AttackParams, Strength
from faultlab.workers.watermark.embedding import final_linear, set_submodule

#: The citation the four variants register with.
CITATION = (
    "Adi et al., USENIX Security 2018 §5.2: θ ← θ − η ∇ CE(f_θ(x), y) over the "
    "attacker's data, for s epochs"
)


class FineTuneParams(AttackParams):
    """Parameters of the fine-tuning attacks (FTLL, FTAL, RTLL, RTAL)."""

    strength = Strength(
        tier="training",
        knob="epochs",
        low=0,
        high=1000,
        stronger="higher",
        defaults=(1, 2, 5, 10, 20),
        integer=True,
    )

    lr: float = Field(1e-3, gt=0.0, le=10.0)
    """Adam learning rate."""
    batch_size: int = Field(64, ge=1, le=65536)
    """Attacker samples per step."""


def fine_tune(
    model: nn.Module,
    epochs: float,
    params: FineTuneParams,
    ctx: AttackContext,
    *,
    all_layers: bool,
    reinitialise: bool,
) -> Attacked:
    """Trains the last layer (or all layers) for ``epochs`` epochs, after re-initialising the
    last layer with the task's K outputs when ``reinitialise``."""
    head = final_linear(model)
    if head is None:
        raise SpecError(f"{ctx.field}.name", "the model has no final nn.Linear to fine-tune")
    name, layer = head
    if reinitialise:
        gen = ctx.generator(21)
        # Initialised on the CPU from the CPU generator, then moved: the same head everywhere.
        fresh = nn.Linear(layer.in_features, ctx.num_classes, bias=layer.bias is not None,
                          device="cpu")
        bound = 1.0 / layer.in_features**0.5  # nn.Linear's default uniform init, seeded
        fresh.weight.data.uniform_(-bound, bound, generator=gen)
        if fresh.bias is not None:
            fresh.bias.data.uniform_(-bound, bound, generator=gen)
        fresh = fresh.to(layer.weight.device, layer.weight.dtype)
        set_submodule(model, name, fresh)
        layer = fresh
    x, y = ctx.attacker_data()
    train_epochs(
        model,
        x,
        y,
        epochs=int(epochs),
        lr=params.lr,
        batch_size=params.batch_size,
        gen=ctx.generator(22),
        parameters=None if all_layers else layer.parameters(),
        train_mode=all_layers,
    )
    return Attacked(model)
