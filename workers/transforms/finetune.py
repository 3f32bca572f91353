r"""Fine-tuning that keeps pruned weights at zero: the recovery step of a compression chain.

The "retrain" step of Han et al., "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015, and the fine-tuning budget of ShrinkBench (Blalock et al., MLSys
2020): Adam (Kingma & Ba, ICLR 2015) on the cross-entropy, with the zero set ``Z`` of the
weights when it starts re-imposed after every step:

.. math:: w \leftarrow \operatorname{Adam}(w, \nabla_w \mathcal{L}_{CE}), \qquad
          w_i \leftarrow 0 \ \ \forall i \in Z
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import nn

from faultlab.workers.transforms._common import TransformParams
from faultlab.workers.transforms._training import finetune as finetune_loop
from faultlab.workers.transforms.registry import TRANSFORMS


class Params(TransformParams):
    """Parameters of ``finetune``."""

    epochs: float = Field(1.0, ge=0.0, le=10_000.0)
    """Passes over the training split (fractions allowed)."""
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    """Adam learning rate."""
    batch_size: int = Field(64, ge=1, le=65_536)
    """Images per step (graphs train full batch)."""
    keep_zeros: bool = True
    """Re-zero the weights that were exactly zero at the start after every step."""


@TRANSFORMS.register(
    "finetune", params=Params,
    citation="Han et al., NeurIPS 2015: Adam on cross-entropy, w_i = 0 kept for i in Z",
)
def finetune(model: nn.Module, data: Any, params: Params, *, seed: int = 0) -> nn.Module:
    """Fine-tuning after pruning: Adam on cross-entropy for ``epochs`` over the training split
    (fractions allowed; graphs full batch), deterministic in ``seed``. Weights that are exactly
    zero when it starts are re-zeroed after every step (``keep_zeros``), so the sparsity
    pattern is preserved. Must run before quantization."""
    return finetune_loop(
        model, data, epochs=params.epochs, lr=params.lr, batch_size=params.batch_size,
        seed=seed, keep_zeros=params.keep_zeros,
    )
