"""Likelihood-based surprise adequacy (LSA).

Source: J. Kim, R. Feldt, S. Yoo, "Guiding deep learning system testing using surprise
adequacy", ICSE 2019.

The activation trace ``α(x)`` of the representation layer (``oracle_settings.layer``; default
the penultimate features) is compared with the traces of the training inputs. Following Kim
et al., neurons whose variance over the training traces is below ``variance_threshold`` are
dropped, and one Gaussian kernel density estimate (``scipy.stats.gaussian_kde``, Scott's
bandwidth) is fitted per class on the training traces of that class; an input is scored by
the KDE of its *predicted* class::

    LSA(x) = −log f̂_ĉ(α(x))

Deviation, to keep the KDE well-posed on small classes: the traces are first projected onto
their top ``lsa_components`` principal components (fitted on all training traces). A class
whose covariance is still singular gets a tiny deterministic jitter. High LSA = the input is
unlike what the model was trained on = a likely misprediction. No probability of correctness.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from faultlab.workers.sampling.oracles.base import ORACLES, ScoringContext
from faultlab.workers.sampling.samplers.base import OracleScores


def class_kde(points: np.ndarray, seed: int) -> stats.gaussian_kde:
    """Gaussian KDE of ``points`` (n × k); jittered once if their covariance is singular."""
    try:
        return stats.gaussian_kde(points.T)
    except np.linalg.LinAlgError:
        jitter = np.random.default_rng(seed).normal(0.0, 1e-6, points.shape)
        return stats.gaussian_kde((points + jitter * (points.std() + 1.0)).T)


@ORACLES.register("lsa", citation="Kim, Feldt & Yoo, ICSE 2019: LSA(x) = −log f̂_ĉ(α(x))")
def likelihood_surprise(ctx: ScoringContext) -> OracleScores:
    """−log density of the input's trace under its predicted class's training traces."""
    train = ctx.representation("train").double().numpy()
    pool = ctx.representation("pool").double().numpy()
    labels = ctx.train.y_train.numpy()
    keep = train.var(axis=0) > ctx.settings.variance_threshold
    if not keep.any():
        keep[:] = True
    train, pool = train[:, keep], pool[:, keep]
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    components = vt[: min(ctx.settings.lsa_components, vt.shape[0])]
    train_p = (train - mean) @ components.T
    pool_p = (pool - mean) @ components.T
    predicted = ctx.predictions.numpy()
    surprise = np.empty(len(pool_p))
    for c in np.unique(predicted):
        members = train_p[labels == c]
        where = predicted == c
        if len(members) <= components.shape[0]:  # too few traces for a density: maximal surprise
            surprise[where] = np.inf
            continue
        surprise[where] = -class_kde(members, ctx.seed + int(c)).logpdf(pool_p[where].T)
    finite = np.isfinite(surprise)
    if not finite.all():
        surprise[~finite] = surprise[finite].max() + 1.0 if finite.any() else 0.0
    return OracleScores(suspicion=surprise)
