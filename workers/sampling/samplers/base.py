"""What every sampler sees and returns (numpy only: samplers run without torch).

* :class:`OperationalPool` — the operational inputs as the sampler sees them: the model's
  predictions, every pseudo-oracle's scores (computed once for the whole pool) and a
  representation of each input (for CES and DeepEST's web). No labels.
* :class:`LabelOracle` — the expensive human oracle: gives the true label of an input and
  counts every distinct label it gives. Samplers learn correctness only through it.
* :class:`SampleResult` — estimate of operational accuracy, its CI, the design's inclusion
  probabilities, the labels spent and the mispredictions found.

A sampler is ``run(pool, oracle, budget, params, rng, confidence) -> SampleResult``,
registered in :data:`SAMPLERS` under the name of its file with its own ``Params`` model and
its citation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faultlab.errors import SpecError
from faultlab.registry import Registry
from faultlab.workers.sampling.samplers._common import design_effect_interval


@dataclass(frozen=True)
class OracleScores:
    """One pseudo-oracle's verdict on every pool input."""

    suspicion: np.ndarray
    """Higher = more likely mispredicted (float, one per input)."""
    p_correct: np.ndarray | None = None
    """The oracle's probability that the model's prediction is right, where it has one."""


@dataclass
class OperationalPool:
    """The unlabelled operational inputs, as samplers see them."""

    predictions: np.ndarray
    """The model's predicted class of every input."""
    scores: dict[str, OracleScores]
    """Pseudo-oracle name → scores; ``msp`` is always present."""
    embedding: np.ndarray
    """Representation of every input (N × d), e.g. penultimate-layer activations."""

    @property
    def size(self) -> int:
        return int(len(self.predictions))

    def oracle(self, name: str) -> OracleScores:
        if name not in self.scores:
            raise SpecError("sampling.samplers.oracle", f"pseudo-oracle {name!r} was not scored",
                            sorted(self.scores))
        return self.scores[name]

    def prior_p_correct(self, name: str) -> np.ndarray:
        """Prior probability of correctness: the oracle's own where it has one, else the
        model's max softmax probability (always available)."""
        own = self.oracle(name).p_correct
        if own is not None:
            return own
        msp = self.scores["msp"].p_correct
        if msp is None:
            raise ValueError("the msp pseudo-oracle must carry its probability")
        return msp

    def predicted_correctness(self, name: str) -> np.ndarray:
        """A [0, 1] prediction of correctness for hybrid estimators: the oracle's probability,
        else its suspicion rescaled to [0, 1] and reversed."""
        scores = self.oracle(name)
        if scores.p_correct is not None:
            return scores.p_correct
        s = scores.suspicion
        span = float(s.max() - s.min())
        return 1.0 - (s - s.min()) / span if span > 0 else np.full_like(s, 0.5)

    def failure_size(self, name: str) -> np.ndarray:
        """Non-negative size measure for probability-proportional-to-size designs: the oracle's
        probability of a misprediction, else its suspicion shifted to start at 0."""
        scores = self.oracle(name)
        if scores.p_correct is not None:
            return np.clip(1.0 - scores.p_correct, 0.0, 1.0)
        return scores.suspicion - scores.suspicion.min()

    def subset(self, ids: np.ndarray) -> OperationalPool:
        """The pool restricted to ``ids`` (renumbered 0..len(ids)-1)."""
        return OperationalPool(
            self.predictions[ids],
            {k: OracleScores(v.suspicion[ids], None if v.p_correct is None else v.p_correct[ids])
             for k, v in self.scores.items()},
            self.embedding[ids],
        )


class LabelOracle:
    """Gives true labels and counts every distinct input it labels (the cost of assessment)."""

    def __init__(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        self._labels = np.asarray(labels)
        self._predictions = np.asarray(predictions)
        self._given = np.zeros(len(self._labels), dtype=bool)

    @property
    def labels_given(self) -> int:
        """Distinct inputs labelled so far (asking twice for one input costs once)."""
        return int(self._given.sum())

    @property
    def labelled_ids(self) -> np.ndarray:
        return np.flatnonzero(self._given)

    def label(self, ids: np.ndarray | list[int]) -> np.ndarray:
        """True labels of ``ids``; every new id costs one label."""
        ids = np.asarray(ids, dtype=np.int64)
        self._given[ids] = True
        return self._labels[ids]

    def correct(self, ids: np.ndarray | list[int]) -> np.ndarray:
        """1.0 where the model's prediction of input ``id`` is right, else 0.0 (costs labels)."""
        ids = np.asarray(ids, dtype=np.int64)
        return (self.label(ids) == self._predictions[ids]).astype(np.float64)


@dataclass
class SampleResult:
    """What a sampler returns: the accuracy estimate, its CI and what it cost."""

    estimate: float
    ci_low: float
    ci_high: float
    std_error: float
    sampled: np.ndarray
    """Distinct pool ids labelled, in the order they were drawn."""
    draw_probabilities: np.ndarray
    """Per sampled id: its inclusion probability (fixed-size designs) or the probability of
    the draw that selected it (with-replacement and sequential designs)."""
    inclusion: np.ndarray | None
    """First-order inclusion probability of every pool input under the design; ``None`` where
    the design has none in closed form (sequential/adaptive and greedy designs)."""
    labels_spent: int
    mispredictions_found: int
    ci_method: str
    """How the interval was formed (e.g. ``wilson-fpc``, ``normal``, ``wilson-srs-assumed``)."""
    details: dict[str, float] = field(default_factory=dict)
    """Estimator internals worth reporting (PPI++'s λ, strata used, ...)."""

    @classmethod
    def from_std_error(
        cls, estimate: float, std_error: float, confidence: float,
        degrees_of_freedom: int | None = None, **design: Any
    ) -> SampleResult:
        """A result whose CI is Wilson's on the design's Kish effective sample size
        ``n_eff = θ̂(1 − θ̂) / se²`` (Korn & Graubard 1998), with the Student-t quantile on
        ``degrees_of_freedom`` (default ``labels − 1``): inside [0, 1] and not the Wald
        interval, whose coverage falls to 0.87–0.91 at 50 labels. ``design`` holds the
        remaining fields."""
        low, high = design_effect_interval(estimate, std_error, int(design["labels_spent"]),
                                           confidence, degrees_of_freedom)
        return cls(estimate=estimate, ci_low=low, ci_high=high, std_error=std_error, **design)


SamplerFn = Callable[
    [OperationalPool, LabelOracle, int, Any, np.random.Generator, float], SampleResult
]
"""``run(pool, oracle, budget, params, rng, confidence)``; ``params`` is the sampler's own
``Params`` model (a :class:`~faultlab.workers.sampling.params.SamplerParams`)."""

#: Every sampler, registered by the name of its file with its ``Params`` and citation.
SAMPLERS: Registry[SamplerFn] = Registry(
    "sampler", "faultlab.workers.sampling.samplers", "sampling.samplers.name"
)


def summary(result: SampleResult) -> dict[str, Any]:
    """The JSON-able scalars of a result."""
    return {
        "estimate": float(result.estimate),
        "ci_low": float(result.ci_low),
        "ci_high": float(result.ci_high),
        "std_error": float(result.std_error),
        "labels_spent": int(result.labels_spent),
        "mispredictions_found": int(result.mispredictions_found),
        "ci_method": result.ci_method,
        "min_inclusion": None if result.inclusion is None else float(result.inclusion.min()),
        **{f"detail_{k}": float(v) for k, v in result.details.items()},
    }
