"""The watermark engine's method catalog: what a spec may name, read from the registries.

Every scheme (``schemes/<name>.py``) and attack (``attacks/<name>.py``) is one file holding its
implementation, its own ``Params`` model and its citation, registered in
:data:`~faultlab.workers.watermark.schemes.base.SCHEMES` or
:data:`~faultlab.workers.watermark.attacks.base.ATTACKS`. This module holds the torch-free
bases of those models (an attack's model also carries its :class:`Strength` knob) and the
lookups the spec validates with. Importing it imports no torch; the lookups import the
registries (and torch) on first use, as the other engines' spec validation does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

from faultlab.errors import SpecError
from faultlab.spec import StrictModel

if TYPE_CHECKING:
    from faultlab.workers.watermark.params import WatermarkParams

#: ``chain`` applies several attacks in order and takes the strength knob of its swept step.
CHAIN = "chain"


@dataclass(frozen=True)
class Strength:
    """How an attack's strength is named, bounded and swept."""

    tier: Literal["input", "weights", "training"]
    """What the attacker touches: the queries, the stored weights, or trains the model."""
    knob: str
    """What the strength means (shown in reports)."""
    low: float
    """Smallest allowed strength."""
    high: float
    """Largest allowed strength."""
    stronger: Literal["higher", "lower"]
    """Direction in which the attack gets stronger (break points scan from the weakest)."""
    defaults: tuple[float, ...]
    """The sweep when the spec gives no ``strengths``."""
    integer: bool = False
    """Strengths must be whole numbers (epochs, bits, JPEG quality)."""

    def check(self, value: float, field: str) -> None:
        """Raises :class:`SpecError` on ``field`` when ``value`` is not an allowed strength."""
        if not self.low <= value <= self.high:
            raise SpecError(
                field, f"{self.knob} must be in [{self.low:g}, {self.high:g}], got {value!r}"
            )
        if self.integer and value != int(value):
            raise SpecError(field, f"{self.knob} must be a whole number, got {value!r}")


class MethodParams(StrictModel):
    """Base of a scheme's or an attack's own parameters."""

    def given(self) -> dict[str, Any]:
        """The parameters the spec set, as JSON (what the spec dumps and report labels show)."""
        return self.model_dump(mode="json", exclude_unset=True)


class SchemeParams(MethodParams):
    """Base of a scheme's own parameters."""

    def check_section(self, section: WatermarkParams, where: str) -> None:
        """Checks against the rest of the ``watermark:`` section; raises SpecError on
        ``where`` (``watermark.schemes[i].params``)."""


class AttackParams(MethodParams):
    """Base of an attack's own parameters; ``strength`` is the attack's knob."""

    strength: ClassVar[Strength]


def parse_scheme_params(
    name: Any, params: Mapping[str, Any] | BaseModel | None, where: str
) -> SchemeParams:
    """``params`` validated by scheme ``name``'s own model; an unknown name raises on
    ``<where>.name``, a bad parameter on ``<where>.params.<param>``."""
    from faultlab.workers.watermark.schemes.base import SCHEMES

    SCHEMES.get(name, f"{where}.name")
    parsed = SCHEMES.parse_params(name, params, f"{where}.params")
    assert isinstance(parsed, SchemeParams)
    return parsed


def parse_attack_params(
    name: Any, params: Mapping[str, Any] | BaseModel | None, where: str, *, chain: bool = True
) -> AttackParams:
    """``params`` validated by attack ``name``'s own model (errors as for schemes). ``chain``:
    whether ``chain`` is among the allowed names of the error (not inside a chain)."""
    from faultlab.workers.watermark.attacks.base import ATTACKS

    if name not in ATTACKS:
        allowed = sorted([*ATTACKS.names(), CHAIN]) if chain else ATTACKS.names()
        raise SpecError(f"{where}.name", f"unknown attack {str(name)[:60]!r}", allowed)
    parsed = ATTACKS.parse_params(name, params, f"{where}.params")
    assert isinstance(parsed, AttackParams)
    return parsed


def attack_strength(name: str) -> Strength:
    """The strength knob of a registered attack."""
    from faultlab.workers.watermark.attacks.base import ATTACKS

    model = ATTACKS.get(name).params
    assert issubclass(model, AttackParams)
    return model.strength
