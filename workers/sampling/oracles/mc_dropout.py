"""Monte-Carlo dropout disagreement.

Source: Y. Gal, Z. Ghahramani, "Dropout as a Bayesian approximation: representing model
uncertainty in deep learning", ICML 2016.

``T = mc_samples`` stochastic forward passes with dropout active at inference. With ``ŷ`` the
model's deterministic prediction::

    disagreement = (1/T) Σ_t [argmax p_t ≠ ŷ],   p_correct = (1/T) Σ_t p_t(ŷ)
    suspicion    = disagreement + 10⁻³ · (1 − p_correct)

(the small second term only breaks the many ties of the discrete disagreement).

Models without dropout (``digits_cnn``, ``resnet_small``): a dropout of rate ``mc_rate`` is
inserted on the penultimate features — a forward pre-hook on the last linear layer applies
inverted dropout to its input — so the head sees thinned features, the usual "last-layer MC
dropout" approximation. When the head is the model's last operation (checked against the
deterministic logits) only the head is re-run on the thinned features, T times. Models with
dropout layers get exactly those layers switched on (rate as trained). The model is left as
it was found (hook removed, modes restored), and the global RNG is untouched (the passes run
in a forked RNG seeded from the campaign seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faultlab.workers.sampling.oracles.base import (
    ORACLES,
    ScoringContext,
    last_linear,
    representation,
)
from faultlab.workers.sampling.samplers.base import OracleScores


def mc_probabilities(model: nn.Module, x: torch.Tensor, samples: int, rate: float, seed: int,
                     logits: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """``T × N × C`` softmax outputs of ``samples`` stochastic passes (``logits``: the
    deterministic ones, used to check the head-only shortcut)."""
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if not dropouts:
            _, linear = last_linear(model)
            features = representation(model, None, x)

            def head(f: torch.Tensor) -> torch.Tensor:  # on the model's device, answered here
                return linear(f.to(linear.weight.device)).to(f.device)

            if torch.allclose(head(features), logits, atol=1e-4, rtol=1e-4):
                # The head is the model's last operation: thinning its input needs only the
                # head re-run, not T full forward passes.
                return torch.stack([torch.softmax(head(F.dropout(features, rate, True)).double(), 1)
                                    for _ in range(samples)])
        return _full_passes(model, x, samples, rate, dropouts, batch_size)


def _full_passes(model: nn.Module, x: torch.Tensor, samples: int, rate: float,
                 dropouts: Sequence[nn.Module], batch_size: int) -> torch.Tensor:
    was_training = model.training
    handle = None
    model.eval()
    if dropouts:
        for m in dropouts:
            m.train()
    else:
        _, head = last_linear(model)

        def thin(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            return (F.dropout(args[0], rate, training=True), *args[1:])

        handle = head.register_forward_pre_hook(thin)
    try:
        passes = []
        for _ in range(samples):
            out = [torch.softmax(model(x[i : i + batch_size]).double(), 1)
                   for i in range(0, len(x), batch_size)]
            passes.append(torch.cat(out))
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    return torch.stack(passes)


@ORACLES.register(
    "mc_dropout", citation="Gal & Ghahramani, ICML 2016: disagreement = (1/T) Σ_t [argmax p_t ≠ ŷ]"
)
def mc_dropout_disagreement(ctx: ScoringContext) -> OracleScores:
    """Share of dropout passes that disagree with the deterministic prediction."""
    s = ctx.settings
    probs = mc_probabilities(ctx.model, ctx.x_pool, s.mc_samples, s.mc_rate, ctx.seed, ctx.logits)
    predicted = ctx.predictions
    index = predicted[None, :, None].expand(probs.shape[0], -1, 1)
    p_correct = probs.gather(2, index).squeeze(2).mean(0)
    disagreement = (probs.argmax(2) != predicted[None, :]).double().mean(0)
    return OracleScores(
        suspicion=(disagreement + 1e-3 * (1.0 - p_correct)).numpy(),
        p_correct=p_correct.numpy(),
    )
