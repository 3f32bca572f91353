"""Ownership tests under adversarial key-blind nulls: the false-claim rate stays ≤ α.

A key-blind model is any model built without the key (healthy, broken, or with a systematic
class confusion); over the key's randomness its false-claim rate must not exceed α for the
rules whose null is exact, and must not exceed the stated bound for the estimated rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faultlab.workers.watermark.schemes.frequency import backup_labels
from faultlab.workers.watermark.verify import binomial_p_value, min_matches, null_rate
from tests.validity.conftest import claim_rate_limit, coverage_tolerance, repetitions

K, N = 10, 100


def _confused(classes: torch.Tensor) -> torch.Tensor:
    """A model that answers every class y as the fixed other class (y + 3) mod K."""
    return (classes + 3) % K


def _constant(classes: torch.Tensor) -> torch.Tensor:
    """A broken model that answers class 0 whatever it sees."""
    return torch.zeros_like(classes)


@pytest.mark.parametrize("model", [_confused, _constant], ids=["class-confusion", "constant"])
@pytest.mark.parametrize("alpha", [1e-3, 1e-2])
def test_backup_rule_false_claims_at_most_alpha(model, alpha: float) -> None:  # noqa: ANN001
    keys = repetitions(20_000, 200_000)
    rate = null_rate("key_blind", K, [], N, confidence=0.99, floor=0.01)
    assert rate.exact and rate.false_claim_bound(alpha) == alpha
    threshold = min_matches(N, rate.p0, alpha)
    assert threshold is not None
    classes = torch.from_numpy(np.random.default_rng(7).integers(0, K, N))
    answers = model(classes)
    claims = 0
    for key in range(keys):
        labels = backup_labels(classes, K, torch.Generator().manual_seed(key))
        claims += int((answers == labels).sum()) >= threshold
    assert claims / keys <= claim_rate_limit(alpha, keys)


def test_estimated_null_reports_its_real_guarantee() -> None:
    """Innocent models differ (a Beta spread of match rates): calibrating on m null models
    bounds a fresh innocent model's false-claim rate by 1/(m+1), not by α."""
    rng = np.random.default_rng(3)
    reps, m, alpha = repetitions(3000), 10, 1e-3
    claims = 0
    bound = 0.0
    for _ in range(reps):
        counts = rng.binomial(N, rng.beta(0.5, 9.5, m)).tolist()
        rate = null_rate("estimated", K, counts, N, confidence=0.99, floor=0.01)
        assert not rate.exact
        bound = rate.false_claim_bound(alpha)
        fresh = int(rng.binomial(N, rng.beta(0.5, 9.5)))
        claims += binomial_p_value(fresh, N, rate.p0) <= alpha
    assert bound == pytest.approx(1 / (m + 1))
    assert claims / reps <= bound + coverage_tolerance(bound, reps)
    assert null_rate("estimated", K, [], N, confidence=0.99, floor=0.01).false_claim_bound(
        alpha
    ) == 1.0
