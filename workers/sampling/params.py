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

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from faultlab.errors import SpecError
from faultlab.spec import StrictModel

#: Default pseudo-oracles of the quality table, cheapest first (a test keeps them equal to
#: the registered ones, ``workers/sampling/oracles/<name>.py``).
DEFAULT_ORACLES: tuple[str, ...] = (
    "msp", "entropy", "margin", "mc_dropout", "ensemble", "lsa", "dsa",
)


def oracle_names() -> list[str]:
    """The registered pseudo-oracles (imports the oracle package, and torch, on first use)."""
    from faultlab.workers.sampling.oracles.base import ORACLES

    return ORACLES.names()


def shift_names() -> list[str]:
    """The registered input shifts (imports :mod:`..shifts`, and torch, on first use)."""
    from faultlab.workers.sampling.shifts import SHIFTS

    return SHIFTS.names()


def _known(kind: str, name: str, names: list[str]) -> str:
    if name not in names:
        raise PydanticCustomError(
            f"unknown_{kind.replace(' ', '_').replace('-', '_')}",
            f"unknown {kind} {{name}}",
            {"name": repr(name), "expected": names},
        )
    return name


class SamplerParams(StrictModel):
    """Base of a sampler's own parameters (a sampler without any uses it as is)."""

    @property
    def guide(self) -> str | None:
        """The pseudo-oracle that guides the sampler, if any (it is always scored)."""
        return None

    def display(self, name: str) -> str:
        """The sampler's name in reports when the spec gives no ``label``."""
        return name

    def check_budget(self, smallest: int, where: str, field: str) -> None:
        """Raises :class:`SpecError` on ``where`` when the design cannot spend ``smallest``
        labels (the smallest budget, given by ``field``)."""


class GuidedParams(SamplerParams):
    """Parameters of a sampler guided by a pseudo-oracle."""

    oracle: str = Field(default="msp", max_length=100)
    """Pseudo-oracle that guides the sampler."""

    @field_validator("oracle")
    @classmethod
    def _registered(cls, value: str) -> str:
        return _known("pseudo-oracle", value, oracle_names())

    @property
    def guide(self) -> str | None:
        return self.oracle

    def display(self, name: str) -> str:
        return f"{name}({self.oracle})"


def parse_sampler_params(name: Any, params: dict[str, Any], where: str) -> SamplerParams:
    """``params`` validated by sampler ``name``'s own model; errors name ``<where>.<param>``."""
    from faultlab.workers.sampling.samplers.base import SAMPLERS

    SAMPLERS.get(name, f"{where}.name")
    parsed = SAMPLERS.parse_params(name, params, where)
    assert isinstance(parsed, SamplerParams)
    return parsed


def _packed(data: Any, where: str) -> Any:
    """A flat sampler entry ``{name, label, <params>...}`` as ``{name, label, params}``."""
    if not isinstance(data, dict) or isinstance(data.get("params"), BaseModel):
        return data
    rest = {k: v for k, v in data.items() if k not in ("name", "label")}
    packed = {"name": data.get("name"), "params": parse_sampler_params(
        data.get("name"), rest, where)}
    if "label" in data:
        packed["label"] = data["label"]
    return packed


class SamplerSpec(StrictModel):
    """One sampler (with its estimator) as configured in ``sampling.samplers``: its name, an
    optional label and the sampler's own parameters, written flat beside the name
    (``{name: stratified, strata: 8}``); each sampler's file holds its ``Params`` model."""

    name: str = Field(min_length=1, max_length=100)
    """Registered sampler (``workers/sampling/samplers/<name>.py``)."""
    label: str | None = Field(default=None, min_length=1, max_length=200)
    """Name in reports; default derived from the sampler and its options (e.g.
    ``stratified-neyman(msp)``)."""
    params: SamplerParams = Field(default_factory=SamplerParams)
    """The sampler's own parameters, validated by its ``Params`` model (filled in from the
    flat fields beside ``name``)."""

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        return _packed(data, "sampling.samplers")

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, **self.params.model_dump(mode="json")}

    @property
    def display(self) -> str:
        """The label used in reports."""
        return self.label or self.params.display(self.name)

    @property
    def oracle(self) -> str | None:
        """The pseudo-oracle that guides the sampler, if any."""
        return self.params.guide


class ShiftSpec(StrictModel):
    """One component of the operational pool: the base inputs under one input shift."""

    name: str = Field(default="clean", min_length=1, max_length=100)
    """Registered shift generator (``workers/sampling/shifts.py``; ``clean`` leaves inputs as
    they are)."""
    severity: float = Field(default=0.5, gt=0.0, le=1.0)
    """Strength of the shift, 0 (none) to 1 (strongest)."""
    fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    """Share of the base inputs that enter the pool under this shift (drawn with the seed)."""

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        return _known("shift", value, shift_names())


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
    """Share of the pool's base inputs (each with all its shifted copies) never labelled, on
    which true operational accuracy is measured."""
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
    oracles: list[str] = Field(default_factory=lambda: list(DEFAULT_ORACLES), max_length=64)
    """Pseudo-oracles scored over the pool for the quality table (those the samplers use are
    always scored)."""
    oracle_settings: OracleSettings = Field(default_factory=lambda: OracleSettings())
    """Settings of the pseudo-oracles."""
    pool: PoolSpec = Field(default_factory=lambda: PoolSpec())
    """How the operational pool is built."""
    improve: ImproveSpec = Field(default_factory=lambda: ImproveSpec())
    """The improvement cycle (mode ``improve``)."""

    @model_validator(mode="before")
    @classmethod
    def _sampler_fields(cls, data: Any) -> Any:
        """Validates each sampler's parameters with its own model, naming its index."""
        if isinstance(data, dict) and isinstance(data.get("samplers"), list):
            samplers = [_packed(s, f"sampling.samplers.{i}")
                        for i, s in enumerate(data["samplers"])]
            return {**data, "samplers": samplers}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SamplingParams:
        if len(set(self.budgets)) != len(self.budgets):
            raise SpecError("sampling.budgets", "has duplicates")
        known = oracle_names()
        for i, oracle in enumerate(self.oracles):
            if oracle not in known:
                raise SpecError(f"sampling.oracles.{i}", f"unknown pseudo-oracle {oracle!r}",
                                known)
        smallest = self.budget if self.mode != "replay" else min(self.budgets)
        field = "sampling.budget" if self.mode != "replay" else "sampling.budgets"
        labels: set[str] = set()
        for i, sampler in enumerate(self.samplers):
            where = f"sampling.samplers.{i}"
            sampler.params.check_budget(smallest, where, field)
            if sampler.display in labels:
                raise SpecError(f"{where}.label",
                                f"two samplers are both called {sampler.display!r}; set label")
            labels.add(sampler.display)
        return self

    def used_oracles(self) -> list[str]:
        """Every pseudo-oracle to score: the listed ones plus those the samplers use, in the
        order of :data:`DEFAULT_ORACLES`."""
        names = set(self.oracles) | {s.oracle for s in self.samplers if s.oracle}
        return [o for o in DEFAULT_ORACLES if o in names]
