"""The ownership test: an exact one-sided binomial test on trigger matches, with the null of
each rule and its calibration on independently trained (null) models.

A suspect model answers ``n`` triggers; ``k`` of them match the key. Under H0 (the model was
not derived from the watermarked one) ``k ~ Binomial(n, p0)``, and ownership is claimed when
``P(K ≥ k | p0) ≤ α`` (``scipy.stats.binomtest``, exact, so p-values far below 1e-6 are exact
too). The null rate ``p0`` depends on the rule:

* **uniform** — labels drawn uniformly and independently of the triggers (Adi et al.):
  whatever an innocent model predicts, each trigger matches with probability exactly 1/K.
* **key_blind** — the backup rule of the new-class mode: trigger ``i`` of class ``y_i`` must be
  answered ``b_i``, drawn independently per trigger and uniformly among the K−1 classes other
  than ``y_i``. Given the triggers, *any* model built without the key — healthy or broken, a
  constant predictor or a systematic class confusion included — matches trigger ``i`` with
  probability ``1/(K−1)`` (0 where it answers ``y_i``), independently across triggers, so its
  matches are stochastically below ``Binomial(n, 1/(K−1))``: ``p0 = 1/(K−1)`` is exact.
* **estimated** — a fixed label (Zhang et al.) or the new-class rule of the frequency scheme
  (count triggers predicted as the watermark class): innocent models can match far more or
  less often than 1/K, so ``p0`` is calibrated on null models:
  ``max(Clopper-Pearson upper bound of the pooled rate, the largest single null model's rate,
  min_null_rate)``. A null model without the watermark class counts as 0 matches; with no
  null models at all the rule falls back to 1/K.

**Guarantees.** For ``uniform`` and ``key_blind`` the false-claim probability of any key-blind
model is at most α (exact binomial tails). An ``estimated`` p-value is an *estimate*: innocent
models differ, and a fresh innocent model, exchangeable with the ``m`` null models, exceeds the
largest null model's matches with probability at most ``1/(m+1)`` — which is the only
distribution-free bound on its false-claim probability (rejection at α < 1/2 needs more matches
than ``n · p0 ≥`` every null model's); :meth:`NullRate.false_claim_bound` reports it. With no
null models there is no bound (1).

A key with two rules (new-class label plus the backup permuted labels) tests every rule the
suspect's outputs allow and combines them with Bonferroni (``min(1, m · min p)``), so a model
whose extra class was dropped is still verifiable by its backup rule.

The false-claim rate is measured leave-one-out: each null model is tested against a null
calibrated on the other null models.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy import stats

RULES = ("primary", "backup")


@dataclass(frozen=True)
class Evidence:
    """Trigger matches of one suspect model (``None``: the rule does not apply to it)."""

    n: int
    primary: int | None
    backup: int | None
    num_outputs: int

    def to_dict(self) -> dict[str, int | None]:
        return {
            "n": self.n,
            "primary": self.primary,
            "backup": self.backup,
            "num_outputs": self.num_outputs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, int | None]) -> Evidence:
        return cls(
            int(data["n"] or 0), data["primary"], data["backup"], int(data["num_outputs"] or 0)
        )

    def matches(self, rule: str) -> int | None:
        return self.primary if rule == "primary" else self.backup


@dataclass(frozen=True)
class NullRate:
    """The null match probability of one rule and where it came from."""

    p0: float
    source: str
    """``uniform`` (1/K), ``key_blind`` (1/(K−1)), ``estimated`` (null models) or
    ``fallback`` (1/K, no null models)."""
    null_matches: int = 0
    null_trials: int = 0
    exact: bool = False
    """True when ``p0`` bounds every key-blind model's match rate (the test's level is α)."""
    null_models: int = 0

    def false_claim_bound(self, alpha: float) -> float:
        """Proven bound on a key-blind model's false-claim probability at level ``alpha``:
        α for exact nulls; ``max(α, 1/(m+1))`` for a null estimated on ``m`` models
        (exchangeability); 1 with no null models."""
        if self.exact:
            return alpha
        if self.null_models == 0:
            return 1.0
        return max(alpha, 1.0 / (self.null_models + 1))


def binomial_p_value(matches: int, n: int, p0: float) -> float:
    """``P(X ≥ matches)`` for ``X ~ Binomial(n, p0)`` (exact)."""
    if n <= 0 or matches <= 0:
        return 1.0
    if p0 <= 0.0:
        return 0.0
    if p0 >= 1.0:
        return 1.0
    return float(stats.binomtest(int(matches), int(n), float(p0), alternative="greater").pvalue)


def min_matches(n: int, p0: float, alpha: float) -> int | None:
    """The fewest matches out of ``n`` that reject H0 at level ``alpha`` (None: impossible).

    E.g. ``n = 100, p0 = 0.1``: 16 at α = 0.05 and 28 at α = 1e-6.
    """
    k = max(1, int(stats.binom.isf(alpha, n, p0)) - 1)
    while k <= n and float(stats.binom.sf(k - 1, n, p0)) > alpha:
        k += 1
    while k > 1 and float(stats.binom.sf(k - 2, n, p0)) <= alpha:
        k -= 1
    return k if k <= n else None


def clopper_pearson_upper(successes: int, trials: int, confidence: float) -> float:
    """One-sided upper confidence bound of a binomial proportion."""
    if trials <= 0 or successes >= trials:
        return 1.0
    return float(stats.beta.ppf(confidence, successes + 1, trials - successes))


def null_rate(
    kind: str,
    num_classes: int,
    null_counts: list[int],
    n: int,
    *,
    confidence: float,
    floor: float,
) -> NullRate:
    """``p0`` of a rule: 1/K for ``uniform``; 1/(K−1) for ``key_blind``; calibrated on the
    null models' match counts (``null_counts``, one per null model, each out of ``n``) for
    ``estimated``."""
    pooled, total, models = sum(null_counts), n * len(null_counts), len(null_counts)
    if kind == "uniform":
        return NullRate(1.0 / num_classes, "uniform", exact=True)
    if kind == "key_blind":
        bound = 1.0 / max(1, num_classes - 1)
        return NullRate(bound, "key_blind", pooled, total, exact=True, null_models=models)
    if not null_counts:
        return NullRate(1.0 / num_classes, "fallback")
    upper = clopper_pearson_upper(pooled, total, confidence)
    largest = max(null_counts) / n if n else 1.0
    p0 = min(1.0, max(upper, largest, floor))
    return NullRate(p0, "estimated", pooled, total, null_models=models)


def ownership_p_value(evidence: Evidence, nulls: dict[str, NullRate]) -> tuple[float, str | None]:
    """Bonferroni-combined p-value over the rules that apply to the suspect, and the rule
    with the smallest raw p-value (None when no rule applies: p = 1)."""
    tested = {
        rule: binomial_p_value(matches, evidence.n, nulls[rule].p0)
        for rule in RULES
        if (matches := evidence.matches(rule)) is not None and rule in nulls
    }
    if not tested:
        return 1.0, None
    best = min(tested, key=lambda r: tested[r])
    return min(1.0, len(tested) * tested[best]), best
