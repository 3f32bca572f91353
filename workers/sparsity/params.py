"""The ``sparsity:`` section of a campaign spec (pydantic; no torch, so the SDK validates cheaply).

A sparsity campaign sweeps compression methods over levels and seeds (each cell one trial),
scans layer sensitivity, derives a per-layer allocation from it, and can compose compressed
models with a fault campaign on the identical fault plan. See docs/sparsity.md.

Levels are *target sparsities* (fraction of weights removed) for unstructured and N:M
pruning, *channel fractions* for structured pruning, bit-widths for quantization, rank ratios
for low-rank factorization and width ratios for distillation. The achieved value is measured
and reported next to the target.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from faultlab.errors import SpecError
from faultlab.spec import StrictModel, TransformSpec

#: Pruning methods of the sweep and the transform each one runs.
PRUNING_METHODS: dict[str, str] = {
    "magnitude": "magnitude",  # scope layer; "global" granularity → global_magnitude
    "random": "random",
    "gradient": "gradient_magnitude",
    "channel_l1": "channel_l1",
    "channel_l2": "channel_l2",
    "nm": "nm",
}
UNSTRUCTURED = frozenset({"magnitude", "random", "gradient"})
STRUCTURED = frozenset({"channel_l1", "channel_l2"})

Method = Literal["magnitude", "random", "gradient", "channel_l1", "channel_l2", "nm"]
Granularity = Literal["layer", "global"]
Schedule = Literal["one_shot", "gradual"]


def _fraction(value: float, what: str = "sparsity") -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{what} must lie in [0, 1), got {value!r}")
    return value


def _ratio(value: float, what: str) -> float:
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{what} must lie in (0, 1], got {value!r}")
    return value


class LevelGrid(StrictModel):
    """Target levels of the sweep: explicit ``values``, or ``count`` levels whose compression
    ratios ``1/(1 − s)`` are log-spaced from ``min`` to ``max`` (ShrinkBench's 2×, 4×, 8×, …)."""

    values: list[float] | None = Field(None, min_length=1, max_length=64)
    """Explicit target sparsities, each in [0, 1)."""
    count: int = Field(5, ge=1, le=64)
    """How many log-spaced levels (ignored when ``values`` is given)."""
    min: float = Field(0.5, ge=0.0, lt=1.0)
    """Lowest target sparsity of the log-spaced grid."""
    max: float = Field(0.95, ge=0.0, lt=1.0)
    """Highest target sparsity of the log-spaced grid."""

    @field_validator("values")
    @classmethod
    def _in_range(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            for x in v:
                _fraction(x)
            if len(set(v)) != len(v):
                raise ValueError("has duplicate levels")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> LevelGrid:
        if self.values is None and self.min > self.max:
            raise SpecError(
                "sparsity.levels.min", f"must not exceed max ({self.max}), got {self.min}"
            )
        return self

    def resolved(self) -> list[float]:
        """The target sparsities, ascending, rounded to 6 decimals (they enter trial keys)."""
        if self.values is not None:
            return sorted(round(v, 6) for v in self.values)
        if self.count == 1 or self.min == self.max:
            return [round(self.min, 6)]
        lo, hi = math.log(1.0 / (1.0 - self.min)), math.log(1.0 / (1.0 - self.max))
        steps = [lo + (hi - lo) * i / (self.count - 1) for i in range(self.count)]
        return [round(1.0 - math.exp(-s), 6) for s in steps]


class NMPattern(StrictModel):
    """An N:M pattern: ``n`` nonzeros in every ``m`` consecutive weights (``n < m``)."""

    n: int = Field(2, ge=1, le=64)
    """Nonzeros kept per group."""
    m: int = Field(4, ge=2, le=64)
    """Group size."""

    @model_validator(mode="after")
    def _n_below_m(self) -> NMPattern:
        if self.n >= self.m:
            raise ValueError(f"N:M needs N < M, got {self.n}:{self.m}")
        return self


class FinetuneSpec(StrictModel):
    """The fine-tuning budget of every pruning / low-rank cell (the same for all schedules)."""

    epochs: float = Field(0.0, ge=0.0, le=1000.0)
    """Total fine-tuning epochs per cell (0 = prune only). One-shot spends it after pruning;
    gradual splits it evenly over its steps (Zhu & Gupta), so schedules compare at equal budget."""
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    """Adam learning rate."""
    batch_size: int = Field(64, ge=1, le=65_536)
    """Mini-batch size (graphs train full batch)."""


class GradualSpec(StrictModel):
    """Gradual pruning with the cubic schedule of Zhu & Gupta (2017):
    ``s_t = s_f + (s_i − s_f)(1 − t/n)³`` for ``t = 1..n``."""

    steps: int = Field(4, ge=1, le=1000)
    """Pruning steps ``n``."""
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)
    """``s_i``, the sparsity the schedule starts from."""


class QuantizationSpec(StrictModel):
    """Quantization cells of the sweep."""

    int8: list[Literal["dynamic", "static"]] = Field(default_factory=list, max_length=2)
    """Post-training int8 (torch.ao): ``dynamic`` (linear layers) and/or ``static`` (calibrated)."""
    bits: list[int] = Field(default_factory=list, max_length=7)
    """Fake-quantization bit-widths to sweep, each in 2..8."""

    @field_validator("bits")
    @classmethod
    def _bits(cls, v: list[int]) -> list[int]:
        for b in v:
            if not 2 <= b <= 8:
                raise ValueError(f"bit-widths must lie in 2..8, got {b!r}")
        return sorted(set(v))

    @field_validator("int8")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        return sorted(set(v))


class LowRankSpec(StrictModel):
    """Low-rank (truncated SVD) cells."""

    rank_ratios: list[float] = Field(default_factory=list, max_length=32)
    """Fractions of each layer's full rank kept, each in (0, 1]."""

    @field_validator("rank_ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        return sorted({_ratio(x, "rank ratios") for x in v})


class DistillationSpec(StrictModel):
    """Knowledge-distillation cells (Hinton et al., 2015)."""

    width_ratios: list[float] = Field(default_factory=list, max_length=16)
    """Student widths as fractions of the teacher's channels, each in (0, 1]."""
    student: str | None = Field(None, min_length=1, max_length=200)
    """A zoo model as the student instead of the slimmed teacher (then ``width_ratios`` only
    labels the cells; use one value)."""
    student_options: dict[str, Any] = Field(default_factory=dict)
    """Options of the zoo student."""
    init: Literal["random", "inherit"] = "random"
    """Slimmed student: fresh weights, or the teacher's surviving ones."""
    epochs: float = Field(10.0, gt=0.0, le=10_000.0)
    """Training epochs of the student."""
    temperature: float = Field(4.0, gt=0.0, le=100.0)
    """Softmax temperature ``T``."""
    alpha: float = Field(0.9, ge=0.0, le=1.0)
    """Weight of the soft (teacher) term."""
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    """Adam learning rate."""

    @field_validator("width_ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        return sorted({_ratio(x, "width ratios") for x in v})


class ChainSpec(StrictModel):
    """A named chain of transforms evaluated as one cell (e.g. prune → fine-tune → int8)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:+-]+$")
    """Cell label (letters, digits, ``_.:+-``)."""
    transforms: list[TransformSpec] = Field(min_length=1, max_length=32)
    """Registered transforms applied in order (see ``faultlab zoo``)."""


class SensitivitySpec(StrictModel):
    """Layer sensitivity scan: one layer (or one coupled channel group) pruned at a time."""

    method: Literal["magnitude", "gradient", "channel_l1", "channel_l2"] = "magnitude"
    """Pruning method of the scan (structured methods scan coupled channel groups)."""
    levels: list[float] = Field(
        default_factory=lambda: [0.25, 0.5, 0.75, 0.9, 0.95], min_length=1, max_length=64
    )
    """Level grid of the scan, each in [0, 1)."""
    layers: list[str] | None = Field(None, max_length=10_000)
    """Layers (structured: group root layers) to scan; default every prunable one."""
    allocation_levels: list[float] = Field(default_factory=lambda: [0.5, 0.8], max_length=32)
    """Overall targets at which a sensitivity-derived per-layer allocation is compared with
    uniform and global allocations ([] = no comparison)."""
    validation_fraction: float = Field(default=0.2, gt=0.0, le=0.5)
    """Share of the training split (label-stratified, seeded) on which the scan measures
    every drop, so the allocation is selected off the test split it is evaluated on; a graph
    with its own ``val_mask`` uses that instead (``workers/sparsity/selection.py``)."""

    @field_validator("levels", "allocation_levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        return sorted({round(_fraction(x, "levels"), 6) for x in v})


class ComposeSpec(StrictModel):
    """Fault resilience of compressed vs dense models on the identical fault plan."""

    chains: list[ChainSpec] = Field(min_length=1, max_length=16)
    """Compressed variants; each must keep the fault sites' names and shapes (masks,
    N:M, fake quantization, ``channel_*`` with ``masked: true``)."""
    faults: dict[str, Any] = Field(default_factory=dict)
    """A ``faults:`` section (see docs/faults.md), planned once on the dense model."""

    @field_validator("faults")
    @classmethod
    def _faults(cls, v: dict[str, Any]) -> dict[str, Any]:
        from faultlab.workers.faults.params import FaultParams

        for key in ("compare_models", "compare_datasets"):
            if v.get(key):
                raise SpecError(
                    f"sparsity.compose.faults.{key}", "is not used in a composed campaign"
                )
        try:
            FaultParams.model_validate(v)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise SpecError(f"sparsity.compose.faults.{loc}".rstrip("."), err["msg"]) from None
        except SpecError as exc:
            raise SpecError("sparsity.compose." + exc.field, exc.problem, exc.allowed) from None
        return v

    @field_validator("chains")
    @classmethod
    def _unique(cls, v: list[ChainSpec]) -> list[ChainSpec]:
        names = [c.name for c in v]
        if len(set(names)) != len(names) or "dense" in names:
            raise ValueError("chain names must be unique and not 'dense'")
        return v


class LatencySpec(StrictModel):
    """How CPU latency is measured (fastest of ``repeats`` timed forwards after warm-up, the
    models of a cell timed round-robin with the dense one)."""

    batch: int = Field(64, ge=1, le=65_536)
    """Images per timed forward (graphs: the whole graph)."""
    repeats: int = Field(15, ge=1, le=10_000)
    """Timed forwards per model."""
    warmup: int = Field(3, ge=0, le=1000)
    """Untimed forwards first."""
    threads: int = Field(1, ge=1, le=256)
    """Intra-op threads while timing (1 = one core per Ray task, comparable across workers)."""


def _methods() -> list[Method]:
    return ["magnitude"]


def _granularities() -> list[Granularity]:
    return ["layer"]


def _schedules() -> list[Schedule]:
    return ["one_shot"]


class SparsityParams(StrictModel):
    """The ``sparsity:`` section of a sparsity / compression campaign."""

    methods: list[Method] = Field(default_factory=lambda: _methods(), max_length=6)
    """Pruning methods swept over ``levels``. ``random`` and global ``magnitude`` are always
    added as baselines."""
    granularities: list[Granularity] = Field(
        default_factory=lambda: _granularities(), min_length=1, max_length=2
    )
    """Scopes of unstructured and channel pruning: per ``layer`` (uniform) or ``global``."""
    schedules: list[Schedule] = Field(
        default_factory=lambda: _schedules(), min_length=1, max_length=2
    )
    """``one_shot`` and/or ``gradual`` (cubic, Zhu & Gupta). N:M cells are always one-shot."""
    levels: LevelGrid = Field(default_factory=lambda: LevelGrid.model_validate({}))
    """Target levels (log-spaced by default)."""
    seeds: int = Field(3, ge=1, le=100)
    """Repetitions of every cell with seeds ``seed, seed+1, …`` (masks, calibration samples,
    fine-tuning order); accuracy is reported with a CI over them."""
    nm: list[NMPattern] = Field(
        default_factory=lambda: [NMPattern.model_validate({})], max_length=8
    )
    """N:M patterns of the ``nm`` method."""
    finetune: FinetuneSpec = Field(default_factory=lambda: FinetuneSpec.model_validate({}))
    """Fine-tuning budget per cell."""
    gradual: GradualSpec = Field(default_factory=lambda: GradualSpec.model_validate({}))
    """Cubic schedule settings."""
    quantization: QuantizationSpec = Field(
        default_factory=lambda: QuantizationSpec.model_validate({})
    )
    """Quantization cells."""
    low_rank: LowRankSpec = Field(default_factory=lambda: LowRankSpec.model_validate({}))
    """Low-rank cells."""
    distillation: DistillationSpec = Field(
        default_factory=lambda: DistillationSpec.model_validate({})
    )
    """Distillation cells."""
    chains: list[ChainSpec] = Field(default_factory=list, max_length=64)
    """Extra cells, each a chain of transforms (e.g. ``channel_l1`` → ``finetune`` →
    ``int8_static``)."""
    sensitivity: SensitivitySpec | None = None
    """Layer sensitivity scan and allocation comparison (off when absent)."""
    compose: ComposeSpec | None = None
    """Fault campaign on dense vs compressed models (off when absent)."""
    calibration_samples: int = Field(256, ge=1, le=1_000_000)
    """Training inputs used for gradient scores and int8 calibration."""
    latency: LatencySpec = Field(default_factory=lambda: LatencySpec.model_validate({}))
    """Latency measurement."""

    @field_validator("methods", "granularities", "schedules")
    @classmethod
    def _dedupe(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))

    @field_validator("chains")
    @classmethod
    def _unique_chains(cls, v: list[ChainSpec]) -> list[ChainSpec]:
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError("chain names must be unique")
        return v

    def swept_methods(self) -> list[str]:
        """The requested methods plus the two baselines (random, magnitude)."""
        return list(dict.fromkeys([*self.methods, "magnitude", "random"]))
