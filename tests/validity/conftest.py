"""Shared helpers of the validity suite: Monte Carlo checks with known truth.

Each check repeats an experiment ``reps`` times and compares an observed rate (coverage of an
interval, false claims of a test) with its nominal value; the allowed gap is the binomial
tolerance that the repetition count itself implies, so more repetitions give a tighter check.
Set ``FAULTLAB_SLOW=1`` for the slow variant (more repetitions, tighter tolerances).
"""

from __future__ import annotations

import math
import os

from scipy import stats

SLOW = bool(os.environ.get("FAULTLAB_SLOW"))


def repetitions(fast: int, slow: int | None = None) -> int:
    """``fast`` repetitions by default, ``slow`` (10 × fast) with ``FAULTLAB_SLOW`` set."""
    return (slow if slow is not None else 10 * fast) if SLOW else fast


def coverage_tolerance(nominal: float, reps: int, false_alarm: float = 1e-3) -> float:
    """How far below ``nominal`` an observed rate over ``reps`` independent repetitions may
    fall by chance: the one-sided normal-approximation binomial bound
    ``z_{1−false_alarm} · sqrt(nominal (1 − nominal) / reps)`` plus a continuity term
    ``1 / reps``, so a correct interval fails the check with probability ≈ ``false_alarm``."""
    z = float(stats.norm.isf(false_alarm))
    return z * math.sqrt(nominal * (1.0 - nominal) / reps) + 1.0 / reps


def claim_rate_limit(alpha: float, reps: int, false_alarm: float = 1e-3) -> float:
    """The largest false-claim count rate consistent with a true rate ``alpha`` over ``reps``
    tests: the binomial ``1 − false_alarm`` quantile divided by ``reps``."""
    return float(stats.binom.isf(false_alarm, reps, alpha)) / reps
