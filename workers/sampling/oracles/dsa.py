"""Distance-based surprise adequacy (DSA).

Source: J. Kim, R. Feldt, S. Yoo, "Guiding deep learning system testing using surprise
adequacy", ICSE 2019.

With ``α(x)`` the representation-layer trace (``oracle_settings.layer``; default the
penultimate features), ``ĉ`` the predicted class of ``x``, ``x_a`` the training input of class
``ĉ`` whose trace is nearest to ``α(x)`` and ``x_b`` the training input of any other class
nearest to ``α(x_a)``::

    DSA(x) = ‖α(x) − α(x_a)‖ / ‖α(x_a) − α(x_b)‖

High DSA = the input sits far from its class and towards another = a likely misprediction.
Distances are Euclidean, computed in batches with ``torch.cdist`` (O(N · n_train) time, no
N × N matrix). No probability of correctness.
"""

from __future__ import annotations

import torch

from faultlab.workers.sampling.oracles.base import ORACLES, ScoringContext
from faultlab.workers.sampling.samplers.base import OracleScores


def nearest(queries: torch.Tensor, keys: torch.Tensor,
            batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to, and index of, the nearest key of every query."""
    dists, index = [], []
    for i in range(0, len(queries), batch_size):
        d = torch.cdist(queries[i : i + batch_size], keys)
        value, arg = d.min(1)
        dists.append(value)
        index.append(arg)
    return torch.cat(dists), torch.cat(index)


@ORACLES.register(
    "dsa", citation="Kim, Feldt & Yoo, ICSE 2019: DSA(x) = ‖α(x) − α(x_a)‖ / ‖α(x_a) − α(x_b)‖"
)
def distance_surprise(ctx: ScoringContext) -> OracleScores:
    """Ratio of the distance to the own class over the distance to the nearest other class."""
    train = ctx.representation("train").double()
    pool = ctx.representation("pool").double()
    labels = ctx.train.y_train
    predicted = ctx.predictions
    surprise = torch.zeros(len(pool), dtype=torch.float64)
    for c in predicted.unique().tolist():
        where = predicted == c
        own, other = train[labels == c], train[labels != c]
        if len(own) == 0 or len(other) == 0:
            surprise[where] = float("inf")
            continue
        dist_a, index_a = nearest(pool[where], own)
        dist_b, _ = nearest(own[index_a], other)
        surprise[where] = dist_a / dist_b.clamp_min(1e-12)
    finite = torch.isfinite(surprise)
    if not bool(finite.all()):
        top = float(surprise[finite].max()) + 1.0 if bool(finite.any()) else 0.0
        surprise[~finite] = top
    return OracleScores(suspicion=surprise.numpy())
