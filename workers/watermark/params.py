"""The ``watermark:`` section of a campaign spec (no torch at import: the SDK validates with it).

A campaign embeds each scheme once per seed, measures the frequency sensitivity map, calibrates
the ownership test on independently trained null models, then sweeps every attack over its
strengths. Every field is documented and bounded. Method names and parameters are checked
against the registries (:mod:`faultlab.workers.watermark.catalog`; each method's file holds its
``Params`` model), strengths against the attack's knob, and a failure raises
:class:`~faultlab.errors.SpecError` with the dotted field (``watermark.attacks[1].strengths[0]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, model_serializer, model_validator

from faultlab.errors import SpecError
from faultlab.spec import StrictModel
from faultlab.workers.watermark.catalog import (
    CHAIN,
    AttackParams,
    MethodParams,
    SchemeParams,
    Strength,
    attack_strength,
    parse_attack_params,
    parse_scheme_params,
)


def _packed(data: Any, where: str, parse: Callable[[str, Any, str], MethodParams]) -> Any:
    """A method entry ``{name, params: {...}}`` with ``params`` validated by the method's own
    model (left as is when not a mapping: pydantic then names the problem)."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return data
    params = data.get("params")
    if not isinstance(params, dict | BaseModel | None):
        return data
    return {**data, "params": parse(data["name"], params, where)}


def _scheme(data: Any, where: str) -> Any:
    return _packed(data, where, parse_scheme_params)


def _step(data: Any, where: str) -> Any:
    return _packed(data, where, lambda n, p, w: parse_attack_params(n, p, w, chain=False))


def _attack(data: Any, where: str) -> Any:
    """An attack entry with its parameters (or, for a chain, each step's) validated."""
    if not isinstance(data, dict) or data.get("name") != CHAIN:
        return _packed(data, where, parse_attack_params)
    params = data.get("params")
    if params.given() if isinstance(params, MethodParams) else params:
        raise SpecError(f"{where}.params", "a chain takes its parameters per step")
    steps = data.get("steps")
    if not isinstance(steps, list):
        return data
    return {**data, "steps": [_step(s, f"{where}.steps[{j}]") for j, s in enumerate(steps)]}


class SchemeSpec(StrictModel):
    """One watermarking scheme of the campaign."""

    name: str = Field(min_length=1, max_length=100)
    """A registered scheme (``schemes/<name>.py``): ``frequency`` (seed paper), ``adi`` or
    ``zhang``."""
    params: SchemeParams = Field(default_factory=SchemeParams)
    """The scheme's parameters, validated by its ``Params`` model (see ``docs/watermark.md``)."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _scheme(data, "watermark.schemes")

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params.given()}


class ChainStep(StrictModel):
    """One step of a chained attack (e.g. prune, then fine-tune)."""

    name: str = Field(min_length=1, max_length=100)
    """An attack name (not ``chain``)."""
    strength: float | None = None
    """Fixed strength of this step; exactly one step leaves it out and takes the swept strength."""
    params: AttackParams = Field(default_factory=AttackParams)
    """The step's parameters, validated by its attack's ``Params`` model."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _step(data, "watermark.attacks.steps")

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        return {"name": self.name, "strength": self.strength, "params": self.params.given()}


class AttackSpec(StrictModel):
    """One attack swept over strengths."""

    name: str = Field(min_length=1, max_length=100)
    """A registered attack (``attacks/<name>.py``) or ``chain``."""
    strengths: list[float] = Field(default_factory=list, max_length=1000)
    """Strengths to sweep (default: the attack's default sweep), in the attack's own units."""
    params: AttackParams = Field(default_factory=AttackParams)
    """The attack's parameters, validated by its ``Params`` model (a chain has none)."""
    steps: list[ChainStep] = Field(default_factory=list, max_length=16)
    """Steps of a ``chain`` attack, applied in order."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return _attack(data, "watermark.attacks")

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "strengths": self.strengths,
            "params": self.params.given(),
            "steps": [s.model_dump(mode="json") for s in self.steps],
        }


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
    sensitivity: SensitivityParams = Field(
        default_factory=lambda: SensitivityParams.model_validate({})
    )
    embed: EmbedParams = Field(default_factory=lambda: EmbedParams.model_validate({}))
    verification: VerificationParams = Field(
        default_factory=lambda: VerificationParams.model_validate({})
    )

    @model_validator(mode="before")
    @classmethod
    def _method_params(cls, data: Any) -> Any:
        """Validates each method's parameters with its own model, naming its index."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, parse in (("schemes", _scheme), ("attacks", _attack)):
            if isinstance(data.get(key), list):
                out[key] = [parse(m, f"watermark.{key}[{i}]") for i, m in enumerate(data[key])]
        return out

    @model_validator(mode="after")
    def _check_methods(self) -> WatermarkParams:
        for i, scheme in enumerate(self.schemes):
            scheme.params.check_section(self, f"watermark.schemes[{i}].params")
        for i, attack in enumerate(self.attacks):
            check_attack(attack, f"watermark.attacks[{i}]")
        return self


def attack_info(attack: AttackSpec) -> Strength:
    """The strength knob of an attack; a chain takes the one of its swept step."""
    if attack.name == CHAIN:
        step = next(s for s in attack.steps if s.strength is None)
        return attack_strength(step.name)
    return attack_strength(attack.name)


def check_attack(attack: AttackSpec, where: str) -> None:
    """The structure and strengths of one attack spec (names and parameters are parsed)."""
    if attack.name == CHAIN:
        if len(attack.steps) < 1:
            raise SpecError(f"{where}.steps", "a chain needs at least one step")
        swept = [j for j, s in enumerate(attack.steps) if s.strength is None]
        if len(swept) != 1:
            raise SpecError(
                f"{where}.steps",
                f"exactly one step must leave out 'strength' (the swept one), found {len(swept)}",
            )
        for j, step in enumerate(attack.steps):
            if step.strength is not None:
                attack_strength(step.name).check(step.strength, f"{where}.steps[{j}].strength")
    elif attack.steps:
        raise SpecError(f"{where}.steps", "only a 'chain' attack has steps")
    knob = attack_info(attack)
    for k, value in enumerate(attack.strengths):
        knob.check(value, f"{where}.strengths[{k}]")


def sweep(attack: AttackSpec) -> list[float]:
    """The strengths of an attack, weakest first, without duplicates."""
    knob = attack_info(attack)
    values = sorted(set(attack.strengths or knob.defaults))
    return values[::-1] if knob.stronger == "lower" else values
