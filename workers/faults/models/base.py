"""The interface of a fault model: draw a fault at plan time, apply it to a bit pattern at run time.

Drawing happens in the planner with a seeded generator and everything drawn (bits, values) is
written into the trial record, so running — and replaying — a trial needs no randomness.
Each model is one file of this package, registered in :data:`FAULT_MODELS` by the name a spec
uses (``faults.fault_model``); a model is a stateless class, instantiated where it is used.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from faultlab.registry import Registry
from faultlab.workers.faults.formats import to_signed, to_unsigned


@dataclass(frozen=True)
class ElementFormat:
    """How one faulted element is stored."""

    width: int
    """Bits per element (32 for fp32, 16 for fp16/bf16, 8 for int8, 64 for graph ids)."""
    floating: bool
    """True for fp32/fp16/bf16 (patterns are IEEE-754 / bfloat16), False for integers."""
    torch_dtype: str
    """Name of the torch dtype (``float32``, ``bfloat16``, ``int8``, ...)."""
    zero_pattern: int = 0
    """The stored pattern that means the real value 0 (the zero point of quantized storage)."""


@dataclass(frozen=True)
class DrawContext:
    """What a fault model may use when drawing a fault for one element."""

    fmt: ElementFormat
    bits: tuple[int, ...]
    """Allowed bit positions."""
    bit_count: int
    """Bits per fault of multi-bit models."""
    value_range: tuple[float, float]
    """The fault-free range of the target tensor (random values are drawn inside it)."""


class FaultModel(abc.ABC):
    """One way a stored element can go wrong."""

    #: Single-bit models are stratified by bit (the trial's stratum carries the bit).
    per_bit: ClassVar[bool] = False
    #: Whether the planner's permutation of cells enumerates every distinct fault (the draw adds
    #: no randomness): only then is an exhausted stratum a census with an exact rate.
    exhaustive: ClassVar[bool] = False

    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        """The fault's parameters (``bits`` or ``value``), JSON-able; ``bit`` is the stratum's
        bit."""

    @abc.abstractmethod
    def apply(self, pattern: int, fault: dict[str, Any], fmt: ElementFormat) -> int:
        """The faulty bit pattern of an element whose fault-free pattern is ``pattern``."""

    def apply_tensor(
        self, patterns: torch.Tensor, fault: dict[str, Any], fmt: ElementFormat
    ) -> torch.Tensor:
        """Vectorised :meth:`apply` over stored integers (signed, as torch keeps them)."""
        out = [
            to_signed(self.apply(to_unsigned(int(v), fmt.width), fault, fmt), fmt.width)
            for v in patterns.reshape(-1).tolist()
        ]
        return torch.tensor(out, dtype=patterns.dtype).reshape(patterns.shape)

    def choices(self, ctx: DrawContext) -> float:
        """Distinct faults per element (the fault population is elements × choices;
        ``math.inf`` for a continuous value)."""
        return 1


#: Every fault model, by the name ``faults.fault_model`` uses.
FAULT_MODELS: Registry[type[FaultModel]] = Registry(
    "fault model", "faultlab.workers.faults.models", "faults.fault_model"
)


class SingleBitModel(FaultModel):
    """Base of the models that hit one bit per fault (flip, stuck-at-0, stuck-at-1): the bit is
    the stratum's, or drawn uniformly from the campaign's bits; every bit is a distinct fault."""

    per_bit = True
    exhaustive = True

    def draw(self, rng: np.random.Generator, ctx: DrawContext, bit: int | None) -> dict[str, Any]:
        if bit is None:
            bit = int(ctx.bits[int(rng.integers(len(ctx.bits)))])
        return {"bits": [int(bit)]}

    def choices(self, ctx: DrawContext) -> int:
        return len(ctx.bits)


def mask(bits: list[int]) -> int:
    """Bit mask with the given positions set."""
    out = 0
    for b in bits:
        out |= 1 << int(b)
    return out


def signed_mask(bits: list[int], width: int) -> int:
    """:func:`mask` as the signed integer of ``width`` bits torch stores."""
    return to_signed(mask(bits), width)
