"""Random bit flips in the stored float32 weights (a rowhammer-/soft-error-style corruption;
Hong et al., "Terminal brain damage", USENIX Security 2019): each bit of every conv/linear
weight and bias flips independently with probability ``strength`` (the bit error rate),
restricted to the allowed positions. Uses the fault engine's IEEE-754 bit-flip model
(:mod:`faultlab.workers.faults.models.bitflip`) on the true binary32 layout.

Implements: w' = w XOR 2^b, each allowed bit w.p. p.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch import nn

from faultlab.workers.faults.formats import raw_view
from faultlab.workers.faults.models.base import ElementFormat
from faultlab.workers.faults.models.bitflip import BitFlip
from faultlab.workers.watermark.attacks.base import ATTACKS, AttackContext, Attacked
from faultlab.workers.watermark.catalog import AttackParams, Strength

_FP32 = ElementFormat(width=32, floating=True, torch_dtype="float32")


class BitflipParams(AttackParams):
    """Parameters of random weight bit flips."""

    strength = Strength(
        tier="weights",
        knob="bit error rate",
        low=0,
        high=0.5,
        stronger="higher",
        defaults=(1e-07, 1e-06, 1e-05, 0.0001),
    )

    bits: list[Annotated[int, Field(ge=0, le=31)]] = Field(
        default_factory=lambda: list(range(32)), min_length=1, max_length=32
    )
    """IEEE-754 float32 bit positions that may flip (0 = mantissa LSB, 31 = sign)."""


@ATTACKS.register(
    "bitflip",
    params=BitflipParams,
    citation="Hong et al., USENIX Security 2019: w' = w XOR 2^b, each allowed bit w.p. p",
)
def bitflip(
    model: nn.Module, strength: float, params: BitflipParams, ctx: AttackContext
) -> Attacked:
    """Flips Binomial(N, strength) distinct random bits among the N allowed (element, bit)
    positions."""
    tensors = [
        p.data
        for m in model.modules()
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
        for p in (m.weight, m.bias)
        if p is not None and p.dtype == torch.float32
    ]
    sizes = np.array([t.numel() for t in tensors])
    allowed = np.array(sorted(set(params.bits)))
    rng = np.random.default_rng(ctx.seed * 1_000_003 + 17)
    population = int(sizes.sum()) * len(allowed)
    flips = int(rng.binomial(population, strength))
    # Distinct (element, bit) positions: a bit flips at most once.
    positions = rng.choice(population, size=flips, replace=False)
    elements, bits = positions // len(allowed), allowed[positions % len(allowed)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    owner = np.searchsorted(offsets, elements, side="right") - 1
    fault_model = BitFlip()
    for which in np.unique(owner):
        raw = raw_view(tensors[which])
        for bit in np.unique(bits[owner == which]):
            chosen = owner == which
            chosen &= bits == bit
            index = torch.from_numpy(elements[chosen] - offsets[which]).to(raw.device)
            raw[index] = fault_model.apply_tensor(raw[index], {"bits": [int(bit)]}, _FP32)
    return Attacked(model)
