"""Fine-pruning (Liu, Dolan-Gavitt & Garg, "Fine-Pruning: defending against backdooring attacks
on deep neural networks", RAID 2018): the channels of the last convolution that stay dormant
on clean data — where backdoor (and trigger-set watermark) behaviour tends to hide — are pruned
in increasing order of mean activation, then the network is fine-tuned on the attacker's data.

Pruned channels are masked at the convolution's output by a forward hook that stays in place
during fine-tuning. Strength = fraction of channels pruned; ``params.epochs`` of fine-tuning.

Implements: mask the s-fraction of last-conv channels of least mean activation, then fine-tune.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from faultlab.errors import SpecError
from faultlab.workers.watermark.attacks.base import (
    ATTACKS,
    AttackContext,
    Attacked,
    train_epochs,
)
from faultlab.workers.watermark.catalog import AttackParams, Strength


class FinePruneParams(AttackParams):
    """Parameters of fine-pruning."""

    strength = Strength(
        tier="training",
        knob="fraction of last-conv channels pruned",
        low=0,
        high=0.999,
        stronger="higher",
        defaults=(0.2, 0.4, 0.6, 0.8, 0.9),
    )

    epochs: int = Field(5, ge=0, le=1000)
    """Fine-tuning epochs after pruning the dormant channels."""
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    """Adam learning rate of the fine-tuning."""
    batch_size: int = Field(64, ge=1, le=65536)
    """Attacker samples per fine-tuning step."""


@ATTACKS.register(
    "fine_prune",
    params=FinePruneParams,
    citation="Liu et al., RAID 2018: mask the s-fraction of last-conv channels of least mean "
    "activation, then fine-tune",
)
def fine_prune(
    model: nn.Module, strength: float, params: FinePruneParams, ctx: AttackContext
) -> Attacked:
    """Prunes the ``strength`` fraction of least-active last-conv channels, then fine-tunes."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise SpecError(f"{ctx.field}.name", "fine-pruning needs a model with an nn.Conv2d")
    conv = convs[-1]
    x, y = ctx.attacker_data()
    total = torch.zeros(conv.out_channels, device=conv.weight.device)

    def record(_: nn.Module, __: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        total.add_(out.detach().relu().transpose(0, 1).flatten(1).mean(1) * len(out))

    handle = conv.register_forward_hook(record)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(x), 512):
            model(x[i : i + 512])
    handle.remove()
    # Ranked on the CPU: dormant channels tie at exactly 0, and one sort orders ties alike
    # whichever device measured the activations.
    pruned = torch.argsort(total.cpu())[: int(round(strength * conv.out_channels))]
    keep = torch.ones(conv.out_channels, device=conv.weight.device)
    keep[pruned.to(keep.device)] = 0.0
    shape = (1, -1) + (1,) * (conv.weight.dim() - 2)
    conv.register_forward_hook(lambda _m, _i, out: out * keep.view(shape).to(out.dtype))
    train_epochs(
        model,
        x,
        y,
        epochs=params.epochs,
        lr=params.lr,
        batch_size=params.batch_size,
        gen=ctx.generator(31),
    )
    return Attacked(model)
