"""The ``watermark:`` section of a campaign spec (no torch: the SDK validates with it).

A campaign embeds each scheme once per seed, measures the frequency sensitivity map, calibrates
the ownership test on independently trained null models, then sweeps every attack over its
strengths. Every field is documented and bounded; method names, method parameters and
strengths are checked against :mod:`faultlab.workers.watermark.catalog`, and a failure raises
:class:`~faultlab.errors.SpecError` with the dotted field (``watermark.attacks[1].strengths[0]``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from faultlab.errors import SpecError
from faultlab.spec import StrictModel
from faultlab.workers.watermark.catalog import ATTACKS, CHAIN, SCHEME_PARAMS, AttackInfo


class SchemeSpec(StrictModel):
    """One watermarking scheme of the campaign."""

    name: str = Field(min_length=1, max_length=100)
    """``frequency`` (seed paper), ``adi`` or ``zhang``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The scheme's parameters (see ``docs/watermark.md``)."""


class ChainStep(StrictModel):
    """One step of a chained attack (e.g. prune, then fine-tune)."""

    name: str = Field(min_length=1, max_length=100)
    """An attack name (not ``chain``)."""
    strength: float | None = None
    """Fixed strength of this step; exactly one step leaves it out and takes the swept strength."""
    params: dict[str, Any] = Field(default_factory=dict)


class AttackSpec(StrictModel):
    """One attack swept over strengths."""

    name: str = Field(min_length=1, max_length=100)
    """Attack name (``faultlab.workers.watermark.catalog.ATTACKS``) or ``chain``."""
    strengths: list[float] = Field(default_factory=list, max_length=1000)
    """Strengths to sweep (default: the attack's default sweep), in the attack's own units."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The attack's parameters."""
    steps: list[ChainStep] = Field(default_factory=list, max_length=16)
    """Steps of a ``chain`` attack, applied in order."""


class SensitivityParams(StrictModel):
    """Fourier perturbation analysis (arXiv 2208.03944, step 1) and its clustering."""

    probe_size: int = Field(128, ge=1, le=100_000)
    """Clean training images perturbed per frequency."""
    epsilon: float = Field(0.1, gt=0.0, le=10.0)
    """RMS of the single-frequency perturbation, in input units."""
    repeats: int = Field(2, ge=1, le=64)
    """Random phases drawn per image and frequency."""
    clusters: int = Field(3, ge=2, le=16)
    """K-means clusters over the per-frequency damage (scikit-learn ``KMeans``)."""
    enabled: bool = True
    """Report the sensitivity map even when no frequency scheme is in the campaign."""


class EmbedParams(StrictModel):
    """How triggers are trained into the model (shared by every scheme)."""

    epochs: int = Field(30, ge=1, le=1000)
    """Fine-tuning epochs over the clean training split with trigger batches mixed in."""
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    """Adam learning rate."""
    batch_size: int = Field(64, ge=1, le=65536)
    """Clean samples per step."""
    trigger_batch: int = Field(32, ge=1, le=65536)
    """Trigger samples mixed into every clean batch."""
    from_scratch: bool = False
    """Train a fresh model (the zoo recipe's epochs) instead of fine-tuning the trained one."""


class VerificationParams(StrictModel):
    """The ownership test: exact one-sided binomial test on trigger matches."""

    alpha: float = Field(1e-3, gt=0.0, lt=1.0)
    """Significance level of an ownership claim."""
    null_models: int = Field(10, ge=0, le=1000)
    """Independently trained unwatermarked models: calibrate estimated nulls and measure the
    false-claim rate."""
    null_confidence: float = Field(0.99, gt=0.5, lt=1.0)
    """One-sided Clopper-Pearson confidence of the estimated null match rate."""
    min_null_rate: float = Field(0.01, ge=0.0, lt=1.0)
    """Floor of an estimated null rate (a model built otherwise could still land on the label)."""


class WatermarkParams(StrictModel):
    """The ``watermark:`` section."""

    schemes: list[SchemeSpec] = Field(
        default_factory=lambda: [SchemeSpec(name="frequency")], min_length=1, max_length=32
    )
    """Schemes to embed (each once per seed)."""
    attacks: list[AttackSpec] = Field(default_factory=list, max_length=64)
    """Removal attacks, each swept over its strengths."""
    seeds: int = Field(3, ge=1, le=1000)
    """Repetitions: seed r trains the base model, draws the key and runs the attacks with
    ``spec.seed + r``; CIs are over these."""
    trigger_size: int = Field(100, ge=1, le=100_000)
    """Triggers per key (n of the binomial test)."""
    attacker_fraction: float = Field(1 / 3, gt=0.0, le=1.0)
    """Share of the training split held by the attacker (training attacks)."""
    budget_points: float = Field(5.0, gt=0.0, le=100.0)
    """An attack breaks the watermark only if test accuracy drops less than this (points)."""
    sensitivity: SensitivityParams = Field(default_factory=lambda: SensitivityParams.model_validate({}))
    embed: EmbedParams = Field(default_factory=lambda: EmbedParams.model_validate({}))
    verification: VerificationParams = Field(default_factory=lambda: VerificationParams.model_validate({}))

    @model_validator(mode="after")
    def _check_methods(self) -> WatermarkParams:
        for i, scheme in enumerate(self.schemes):
            where = f"watermark.schemes[{i}]"
            model = SCHEME_PARAMS.get(scheme.name)
            if model is None:
                raise SpecError(f"{where}.name", f"unknown scheme {scheme.name!r}", sorted(SCHEME_PARAMS))
            params = validate_method_params(model, scheme.params, f"{where}.params")
            cluster = getattr(params, "cluster", None)
            if isinstance(cluster, int) and not 0 <= cluster < self.sensitivity.clusters:
                raise SpecError(
                    f"{where}.params.cluster",
                    f"rank {cluster} outside the {self.sensitivity.clusters} clusters",
                    ["low", "mid", "high", *range(self.sensitivity.clusters)],
                )
        for i, attack in enumerate(self.attacks):
            check_attack(attack, f"watermark.attacks[{i}]")
        return self


def validate_method_params(model: type[StrictModel], params: dict[str, Any], field: str) -> StrictModel:
    """``params`` validated against a method's model; SpecError names ``field.<param>``."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        allowed = sorted(model.model_fields) if err["type"] == "extra_forbidden" else None
        problem = "unknown parameter" if allowed else err["msg"]
        raise SpecError(f"{field}.{loc}" if loc else field, problem, allowed) from None


def check_strength(info: AttackInfo, value: float, field: str) -> None:
    if not info.low <= value <= info.high:
        raise SpecError(field, f"{info.knob} must be in [{info.low:g}, {info.high:g}], got {value!r}")
    if info.integer and value != int(value):
        raise SpecError(field, f"{info.knob} must be a whole number, got {value!r}")


def attack_info(attack: AttackSpec) -> AttackInfo:
    """The strength knob of an attack; a chain takes the one of its swept step."""
    if attack.name == CHAIN:
        step = next(s for s in attack.steps if s.strength is None)
        return ATTACKS[step.name]
    return ATTACKS[attack.name]


def check_attack(attack: AttackSpec, where: str) -> None:
    """Names, parameters and strengths of one attack spec."""
    allowed = sorted([*ATTACKS, CHAIN])
    if attack.name == CHAIN:
        if attack.params:
            raise SpecError(f"{where}.params", "a chain takes its parameters per step")
        if len(attack.steps) < 1:
            raise SpecError(f"{where}.steps", "a chain needs at least one step")
        swept = [j for j, s in enumerate(attack.steps) if s.strength is None]
        if len(swept) != 1:
            raise SpecError(f"{where}.steps", f"exactly one step must leave out 'strength' (the swept one), found {len(swept)}")
        for j, step in enumerate(attack.steps):
            info = ATTACKS.get(step.name)
            if info is None:
                raise SpecError(f"{where}.steps[{j}].name", f"unknown attack {step.name!r}", sorted(ATTACKS))
            validate_method_params(info.params, step.params, f"{where}.steps[{j}].params")
            if step.strength is not None:
                check_strength(info, step.strength, f"{where}.steps[{j}].strength")
    else:
        info = ATTACKS.get(attack.name)
        if info is None:
            raise SpecError(f"{where}.name", f"unknown attack {attack.name!r}", allowed)
        if attack.steps:
            raise SpecError(f"{where}.steps", "only a 'chain' attack has steps")
        validate_method_params(info.params, attack.params, f"{where}.params")
    info = attack_info(attack)
    for k, value in enumerate(attack.strengths):
        check_strength(info, value, f"{where}.strengths[{k}]")


def sweep(attack: AttackSpec) -> list[float]:
    """The strengths of an attack, weakest first, without duplicates."""
    info = attack_info(attack)
    values = sorted(set(attack.strengths or info.defaults))
    return values[::-1] if info.stronger == "lower" else values
