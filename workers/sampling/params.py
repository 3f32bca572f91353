"""The ``sampling:`` section of a campaign spec (pydantic; no torch, so the SDK validates cheaply).

An operational-sampling campaign implements DAIC (DNN Assessment and Improvement Cycle,
abstract 1 in ``seeds/abstracts.txt``): cheap *pseudo-oracles* scored over a whole
*operational pool* guide expensive *label sampling*, whose estimators give the model's
operational accuracy with a valid confidence interval; the labelled inputs then improve the
model. Three modes:

* ``assess`` — spend ``budget`` labels with each sampler; report estimate, CI, sampled ids;
* ``replay`` — on a pool whose labels are all known, run samplers × ``budgets`` ×
  ``repetitions`` as trials and report bias, RMSE, CI coverage and width, labels saved vs
  simple random sampling at equal RMSE and mispredictions found;
* ``improve`` — the DAIC cycle: per iteration sample ``budget`` inputs, label them, fine-tune
  on every labelled input, re-estimate; each sampler is an arm, compared with a control that
  spends the same labels on random inputs.

See ``docs/sampling.md`` for every sampler's formulas and citations.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from faultlab.errors import SpecError
from faultlab.spec import StrictModel

#: Registered samplers (``workers/sampling/samplers/<name>.py``; a test keeps the two in step).
SAMPLERS: tuple[str, ...] = ("srs", "stratified", "pps", "deepest", "ces", "difference", "ppi")

#: Registered pseudo-oracles (``workers/sampling/oracles/<name>.py``).
ORACLES: tuple[str, ...] = ("msp", "entropy", "margin", "mc_dropout", "ensemble", "lsa", "dsa")

#: Input shift generators of the operational pool (``workers/sampling/shifts.py``).
SHIFTS: tuple[str, ...] = (
    "clean", "gaussian_noise", "salt_pepper", "blur", "translate", "rotate", "contrast",
    "occlusion",
)

#: Which sampler options apply to which sampler (any other option set to a non-default value
#: is an error).
SAMPLER_OPTIONS: dict[str, frozenset[str]] = {
    "srs": frozenset(),
    "stratified": frozenset({"oracle", "strata", "allocation"}),
    "pps": frozenset({"oracle", "estimator", "floor"}),
    "deepest": frozenset({"oracle", "floor", "web_probability", "neighbours"}),
    "ces": frozenset({"groups", "group_size", "initial", "bins"}),
    "difference": frozenset({"oracle", "fit", "folds"}),
    "ppi": frozenset({"oracle", "power_tuning"}),
}

_COMMON = frozenset({"name", "label"})


class SamplerSpec(StrictModel):
    """One sampler (with its estimator) as configured in ``sampling.samplers``."""

    name: str = Field(min_length=1, max_length=100)
    """Registered sampler: ``srs``, ``stratified``, ``pps``, ``deepest``, ``ces``,
    ``difference`` or ``ppi``."""
    label: str | None = Field(default=None, min_length=1, max_length=200)
    """Name in reports; default derived from the sampler and its options (e.g.
    ``stratified-neyman(msp)``)."""
    oracle: str = Field(default="msp", max_length=100)
    """Pseudo-oracle that guides the sampler (stratified, pps, deepest, difference, ppi)."""
    strata: int = Field(default=10, ge=2, le=200)
    """stratified: number of strata (equal-size quantile bins of the oracle's score)."""
    allocation: Literal["proportional", "neyman"] = "neyman"
    """stratified: labels per stratum proportional to its size, or Neyman (size × predicted SD)."""
    estimator: Literal["hh", "ht"] = "ht"
    """pps: Hansen–Hurwitz (draws with replacement) or Horvitz–Thompson (Pareto πps, without)."""
    floor: float = Field(default=0.5, gt=0.0, le=1.0)
    """pps, deepest: weight of the uniform component mixed into the selection probabilities,
    so every input has probability at least ``floor / N`` per draw."""
    web_probability: float = Field(default=0.2, ge=0.0, lt=1.0)
    """deepest: probability that a draw follows the web (neighbours of found failures)."""
    neighbours: int = Field(default=5, ge=1, le=1000)
    """deepest: web links added from each found failure to its nearest pool inputs."""
    fit: Literal["logistic", "none"] = "logistic"
    """difference: working model of correctness — a cross-fitted logistic regression on the
    oracle score, or the oracle's own probability of correctness as is."""
    folds: int = Field(default=5, ge=2, le=20)
    """difference: cross-fitting folds of the working model."""
    power_tuning: bool = True
    """ppi: PPI++ power tuning of the pseudo-label weight λ (False: classic PPI, λ = 1)."""
    groups: int = Field(default=300, ge=1, le=100_000)
    """ces: random candidate groups examined per step."""
    group_size: int = Field(default=5, ge=1, le=1000)
    """ces: inputs added per step."""
    initial: int = Field(default=30, ge=1, le=100_000)
    """ces: inputs drawn at random before the conditioning steps."""
    bins: int = Field(default=20, ge=2, le=1000)
    """ces: histogram bins per neuron of the representation."""

    @property
    def display(self) -> str:
        """The label used in reports."""
        if self.label:
            return self.label
        if self.name == "srs":
            return "srs"
        if self.name == "ces":
            return "ces"
        if self.name == "stratified":
            return f"stratified-{self.allocation}({self.oracle})"
        if self.name == "pps":
            return f"pps-{self.estimator}({self.oracle})"
        if self.name == "ppi":
            return f"{'ppi++' if self.power_tuning else 'ppi'}({self.oracle})"
        return f"{self.name}({self.oracle})"

    def uses_oracle(self) -> bool:
        return "oracle" in SAMPLER_OPTIONS.get(self.name, frozenset())


class ShiftSpec(StrictModel):
    """One component of the operational pool: the base inputs under one input shift."""

    name: Literal[
        "clean", "gaussian_noise", "salt_pepper", "blur", "translate", "rotate", "contrast",
        "occlusion",
    ] = "clean"
    """Shift generator (``clean`` leaves inputs as they are)."""
    severity: float = Field(default=0.5, gt=0.0, le=1.0)
    """Strength of the shift, 0 (none) to 1 (strongest)."""
    fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    """Share of the base inputs that enter the pool under this shift (drawn with the seed)."""


class PoolSpec(StrictModel):
    """How the operational pool is built so that operation differs from the test set."""

    include_test: bool = True
    """The dataset's test split is part of the base inputs."""
    holdout_fraction: float = Field(default=0.0, ge=0.0, le=0.9)
    """Share of the training split withheld from training and moved to the base inputs
    (0 = train on the whole training split, the zoo's default model)."""
    holdout_classes: list[int] | None = Field(default=None, min_length=1, max_length=10_000)
    """Hold out only inputs of these classes: a slice under-represented in training."""
    shifts: list[ShiftSpec] = Field(default_factory=lambda: [ShiftSpec()], min_length=1,
                                    max_length=64)
    """Components of the pool; each adds (a fraction of) the base inputs under one shift."""
    class_prior: list[float] | None = Field(default=None, min_length=2, max_length=100_000)
    """Target class proportions of the pool (class-prior shift), realised by subsampling
    each class; one weight ≥ 0 per class."""
    size: int | None = Field(default=None, ge=1, le=10_000_000)
    """Keep at most this many pool inputs (a random subset)."""

    @model_validator(mode="after")
    def _consistent(self) -> PoolSpec:
        if not self.include_test and self.holdout_fraction == 0.0:
            raise SpecError("sampling.pool.holdout_fraction",
                            "must be > 0 when include_test is false (the pool would be empty)")
        if self.class_prior is not None:
            if any(w < 0 for w in self.class_prior) or sum(self.class_prior) <= 0:
                raise SpecError("sampling.pool.class_prior",
                                "weights must be ≥ 0 with a positive sum")
        if self.holdout_classes is not None and self.holdout_fraction == 0.0:
            raise SpecError("sampling.pool.holdout_classes", "needs holdout_fraction > 0")
        return self


class OracleSettings(StrictModel):
    """Settings of the pseudo-oracles (each scored once over the whole pool and cached)."""

    mc_samples: int = Field(default=30, ge=2, le=1000)
    """mc_dropout: stochastic forward passes."""
    mc_rate: float = Field(default=0.2, gt=0.0, lt=1.0)
    """mc_dropout: dropout probability (also of the wrapper used when the model has no dropout)."""
    ensemble_members: int = Field(default=4, ge=2, le=32)
    """ensemble: extra members trained with different seeds."""
    layer: str | None = Field(default=None, min_length=1, max_length=500)
    """Module whose output is the representation for LSA, DSA, CES and DeepEST's web;
    default the input of the model's last linear layer (penultimate features)."""
    lsa_components: int = Field(default=10, ge=1, le=512)
    """lsa: principal components kept before the per-class kernel density estimate."""
    variance_threshold: float = Field(default=1e-5, ge=0.0, le=1e3)
    """lsa: neurons whose training variance is below this are dropped (Kim et al.)."""


class ImproveSpec(StrictModel):
    """The DAIC improvement cycle (``mode: improve``)."""

    iterations: int = Field(default=3, ge=1, le=50)
    """Assess-label-fine-tune iterations."""
    repetitions: int = Field(default=3, ge=1, le=200)
    """Independent repetitions of every arm (seeds), for the gain's CI."""
    eval_fraction: float = Field(default=0.3, ge=0.05, le=0.9)
    """Share of the pool never labelled, on which true operational accuracy is measured."""
    epochs: int = Field(default=15, ge=1, le=1000)
    """Fine-tuning epochs over the labelled inputs per iteration."""
    lr: float = Field(default=1e-3, gt=0.0, le=1.0)
    """Fine-tuning learning rate (Adam)."""
    batch_size: int = Field(default=32, ge=1, le=65_536)
    """Fine-tuning batch size (labelled inputs per step)."""
    replay_ratio: float = Field(default=1.0, ge=0.0, le=100.0)
    """Training-split inputs mixed into every step per labelled input (guards against
    forgetting)."""


class SamplingParams(StrictModel):
    """The ``sampling:`` section of an operational-sampling campaign."""

    mode: Literal["assess", "replay", "improve"] = "replay"
    """``assess`` (estimate + CI + sampled ids), ``replay`` (estimator evaluation on a fully
    labelled pool) or ``improve`` (DAIC cycle against a random-label control)."""
    samplers: list[SamplerSpec] = Field(
        default_factory=lambda: [SamplerSpec(name="srs")], min_length=1, max_length=100
    )
    """Samplers to run (replay, assess) or the DAIC arms (improve)."""
    budgets: list[Annotated[int, Field(ge=1, le=10_000_000)]] = Field(
        default_factory=lambda: [50, 100, 200, 400, 800], min_length=1, max_length=100
    )
    """replay: label budgets."""
    repetitions: int = Field(default=200, ge=1, le=100_000)
    """replay: repetitions of every (sampler, budget) cell."""
    budget: int = Field(default=200, ge=1, le=10_000_000)
    """assess: labels to spend; improve: labels per iteration."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    """Confidence level of every interval."""
    oracles: list[str] = Field(default_factory=lambda: list(ORACLES), max_length=64)
    """Pseudo-oracles scored over the pool for the quality table (those the samplers use are
    always scored)."""
    oracle_settings: OracleSettings = Field(default_factory=lambda: OracleSettings())
    """Settings of the pseudo-oracles."""
    pool: PoolSpec = Field(default_factory=lambda: PoolSpec())
    """How the operational pool is built."""
    improve: ImproveSpec = Field(default_factory=lambda: ImproveSpec())
    """The improvement cycle (mode ``improve``)."""

    @model_validator(mode="after")
    def _consistent(self) -> SamplingParams:
        if len(set(self.budgets)) != len(self.budgets):
            raise SpecError("sampling.budgets", "has duplicates")
        for i, oracle in enumerate(self.oracles):
            if oracle not in ORACLES:
                raise SpecError(f"sampling.oracles.{i}", f"unknown pseudo-oracle {oracle!r}",
                                ORACLES)
        labels: set[str] = set()
        for i, sampler in enumerate(self.samplers):
            where = f"sampling.samplers.{i}"
            if sampler.name not in SAMPLERS:
                raise SpecError(f"{where}.name", f"unknown sampler {sampler.name!r}", SAMPLERS)
            if sampler.oracle not in ORACLES:
                raise SpecError(f"{where}.oracle", f"unknown pseudo-oracle {sampler.oracle!r}",
                                ORACLES)
            allowed = SAMPLER_OPTIONS[sampler.name] | _COMMON
            # Options left at their default are fine: a normalised spec (``to_dict``) carries
            # every field, and must validate again on the server.
            extra = sorted(
                f for f in set(sampler.model_fields_set) - allowed
                if getattr(sampler, f) != SamplerSpec.model_fields[f].default
            )
            if extra:
                raise SpecError(f"{where}.{extra[0]}",
                                f"does not apply to sampler {sampler.name!r}", sorted(allowed))
            if sampler.name == "stratified":
                smallest = self.budget if self.mode != "replay" else min(self.budgets)
                field = "sampling.budget" if self.mode != "replay" else "sampling.budgets"
                if 2 * sampler.strata > smallest:
                    raise SpecError(
                        f"{where}.strata",
                        f"{sampler.strata} strata need at least {2 * sampler.strata} labels (2 "
                        f"per stratum for its variance), more than the smallest budget "
                        f"({field} = {smallest})",
                        f"2..{max(2, smallest // 2)}",
                    )
            if sampler.display in labels:
                raise SpecError(f"{where}.label",
                                f"two samplers are both called {sampler.display!r}; set label")
            labels.add(sampler.display)
        return self

    def used_oracles(self) -> list[str]:
        """Every pseudo-oracle to score: the listed ones plus those the samplers use."""
        names = list(self.oracles)
        names += [s.oracle for s in self.samplers if s.uses_oracle()]
        return [o for o in ORACLES if o in set(names)]
