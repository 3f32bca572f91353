"""Fine-tuning that keeps pruned weights at zero: the recovery step of a compression chain."""

from __future__ import annotations

from typing import Any

from torch import nn

from faultlab.workers.transforms._common import check_bool, check_int, check_keys, check_number
from faultlab.workers.transforms._training import finetune as finetune_loop
from faultlab.workers.transforms.registry import register_transform

PARAMS = {"epochs", "lr", "batch_size", "keep_zeros"}


def validate(params: dict[str, Any]) -> None:
    check_keys(params, PARAMS)
    check_number(params, "epochs", 0, 10_000)
    check_number(params, "lr", 0, 10, open_low=True)
    check_int(params, "batch_size", 1, 65_536)
    check_bool(params, "keep_zeros")


@register_transform("finetune", validate=validate)
def finetune(
    model: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    epochs: float = 1.0,
    lr: float = 1e-3,
    batch_size: int = 64,
    keep_zeros: bool = True,
) -> nn.Module:
    """Fine-tuning after pruning (the "retrain" step of Han et al., NeurIPS 2015, and the
    fine-tuning budget of ShrinkBench, Blalock et al., MLSys 2020): Adam on cross-entropy for
    ``epochs`` over the training split (fractions allowed; graphs full batch), deterministic
    in ``seed``. Weights that are exactly zero when it starts are re-zeroed after every step
    (``keep_zeros``), so the sparsity pattern is preserved. Must run before quantization."""
    return finetune_loop(
        model, data, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, keep_zeros=keep_zeros
    )
