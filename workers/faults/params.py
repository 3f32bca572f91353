"""The ``faults:`` section of a campaign spec (pydantic; no torch, so the SDK validates cheaply).

A fault campaign injects hardware faults (bit flips, stuck-at bits, random values, zeros) into
the parameters, activations, GNN messages/aggregations, node embeddings or graph structure of a
model, compares every faulty forward pass with the golden (fault-free) one and reports
masked / SDC / critical-SDC / DUE rates with Wilson confidence intervals.

How many trials run is decided by ``sampling``:

* ``uniform`` — ``trials`` faults drawn uniformly over the whole fault space (what
  PyTorchFI-style random injection does);
* ``stratified`` — Leveugle et al. (DATE 2009) sample size per stratum
  (``stratify``: layer × bit × dtype by default) for ``margin`` at ``confidence``;
* ``adaptive`` — a pilot round per stratum, then more rounds, each stratum stopping as soon
  as its Wilson CI half-width (with finite-population correction) is at most ``margin``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from faultlab.errors import SpecError
from faultlab.registry import Registry
from faultlab.spec import DatasetSpec, ModelSpec, StrictModel

#: Where a fault lands.
Target = Literal[
    "weight", "bias", "activation", "embedding", "message", "aggregation", "edge_index",
    "edge_weight",
]

TARGETS: tuple[str, ...] = get_args(Target)

DtypeName = Literal["fp32", "fp16", "bf16", "int8"]
StratumKey = Literal["layer", "bit", "dtype"]
_FP32: tuple[DtypeName, ...] = ("fp32",)
_ALL_KEYS: tuple[StratumKey, ...] = ("layer", "bit", "dtype")

#: Number formats and their width in bits (fp32/fp16/bf16 are IEEE-754 / bfloat16 layouts;
#: int8 is the stored integer of a model quantized with scale and zero point).
DTYPE_BITS: dict[str, int] = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8}

#: Fault models that pick their own bit(s) (``bit`` is not a stratum for them); names, not the
#: registry, so that checking a spec needs no torch (a test keeps them in step with the models).
BITLESS_MODELS = frozenset({"random_value", "zero"})
MULTI_BIT_MODELS = frozenset({"multi_bitflip", "adjacent_bitflip"})


def _registered(registry: Registry[Any], name: str) -> str:
    """``name`` if ``registry`` holds it; a ValueError listing the allowed names otherwise (the
    spec parser names the field). Registries are read lazily: they import torch, and a spec
    that keeps the default fault model and no mitigation is parsed without it."""
    if name not in registry:
        raise PydanticCustomError(
            "unknown_method", f"unknown {registry.family} {{name}}",
            {"name": repr(name), "expected": registry.names()},
        )
    return name


class MitigationSpec(StrictModel):
    """One mitigation A/B-tested on the identical fault plan."""

    name: str = Field(min_length=1, max_length=100)
    """Registered mitigation: ``ranger``, ``clipping`` or ``gnn_bound``."""
    layers: list[str] = Field(default_factory=list, max_length=10_000)
    """Modules whose outputs are protected; empty = the mitigation's default set."""
    slack: float = Field(0.0, ge=0.0, le=100.0)
    """Widen the profiled bounds by this fraction of their range (0 = exact profiled bounds)."""

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from faultlab.workers.faults.mitigations import MITIGATIONS

        return _registered(MITIGATIONS, v)


class FaultParams(StrictModel):
    """The ``faults:`` section of a fault-injection campaign."""

    fault_model: str = Field("bitflip", max_length=100)
    """Fault model: ``bitflip`` (single transient flip), ``multi_bitflip`` (``bit_count``
    distinct random bits), ``adjacent_bitflip`` (``bit_count`` neighbouring bits),
    ``stuck_at_0``, ``stuck_at_1``, ``random_value``, ``zero``."""
    target: Target | list[Target] = "weight"
    """Where faults land: ``weight``/``bias`` (parameters, in place with exact restore),
    ``activation`` (any module's output, via forward hooks), ``embedding`` (the node embeddings
    a GNN layer outputs), ``message``/``aggregation`` (inside PyG ``MessagePassing``),
    ``edge_index`` (the graph's stored node ids) or ``edge_weight`` (the edge weights a
    ``MessagePassing`` layer propagates). A list (``[weight, activation, message]``) makes one
    campaign over several targets, planned and reported per target (strata include it)."""
    activation_position: Literal["same", "per_input"] = "same"
    """Image activation faults: ``same`` hits the same element of every input of the batch
    (PyTorchFI's default); ``per_input`` draws an independent position for each input, and
    the trial records every position (so replay reproduces it)."""
    layers: list[str] = Field(default_factory=list, max_length=10_000)
    """Qualified module names (``conv1``, ``layers.0.conv2``); empty = every eligible module.
    A module called several times per forward is addressed as ``name#k`` (k-th call) for
    activation targets; a bare name means every call."""
    dtypes: list[DtypeName] = Field(default_factory=lambda: list(_FP32), min_length=1, max_length=4)
    """Number formats. The model runs in each format (fp16/bf16 copies are made once per
    campaign); ``int8`` needs a model quantized with scale/zero point and flips the stored
    integers."""
    bits: list[int] | None = Field(None, max_length=32)
    """Bit positions (0 = least significant); default every bit of the format."""
    bit_count: int = Field(2, ge=2, le=32)
    """Bits per fault for ``multi_bitflip`` / ``adjacent_bitflip``."""
    ber: float | None = Field(None, gt=0.0, lt=1.0)
    """Bit-error-rate mode: every bit of the target flips independently with this probability;
    the number of flipped bits per trial is Binomial(total bits, ber). Exclusive of ``bits``."""
    max_faults_per_trial: int = Field(4096, ge=1, le=1_000_000)
    """Upper bound on faults in one trial (BER mode); larger draws are an error, not a clip."""
    sampling: Literal["uniform", "stratified", "adaptive"] = "stratified"
    """How many trials run: see the module docstring."""
    trials: int | None = Field(None, ge=1, le=100_000_000)
    """Total trials for ``uniform`` sampling (required there); a cap per stratum otherwise."""
    stratify: list[StratumKey] = Field(default_factory=lambda: list(_ALL_KEYS), max_length=3)
    """Strata of ``stratified``/``adaptive`` sampling (workload — model × dataset — always is
    one)."""
    margin: float = Field(0.05, gt=0.0, le=0.5)
    """Target half-width of each stratum's confidence interval (0 < margin ≤ 0.5)."""
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Confidence level of every interval and of the sample sizes."""
    expected_rate: float = Field(0.5, gt=0.0, lt=1.0)
    """Prior failure proportion p of Leveugle's formula (0.5 = worst case)."""
    pilot_trials: int = Field(32, ge=4, le=1_000_000)
    """First-round trials per stratum in ``adaptive`` sampling."""
    max_rounds: int = Field(12, ge=1, le=1000)
    """Planning rounds of ``adaptive`` sampling before it stops regardless."""
    stop_on: Literal["sdc", "critical_sdc", "due"] = "sdc"
    """The rate whose CI decides adaptive stopping."""
    margin_scope: Literal["stratum", "layer", "workload"] = "stratum"
    """Whose CI ``margin`` bounds in adaptive sampling: every stratum's own (Wilson), or each
    layer's (or each workload's) stratified rate — then the strata of a layer share one budget,
    allocated across them by Neyman allocation from the observed rates, which is how bits that
    always (or never) fail stop costing trials."""
    sdc_tolerance: float = Field(0.0, ge=0.0, le=1e6)
    """Largest absolute output difference still counted as masked (0 = bit-identical)."""
    mitigations: list[MitigationSpec] = Field(default_factory=list, max_length=8)
    """Mitigations evaluated on the identical fault plan (A/B), with SDC reduction and overhead."""
    compare_models: list[ModelSpec] = Field(default_factory=list, max_length=64)
    """Further models: the campaign covers ``[model, *compare_models] × [dataset,
    *compare_datasets]`` with the same fault settings (e.g. a GNN resilience study)."""
    compare_datasets: list[DatasetSpec] = Field(default_factory=list, max_length=64)
    """Further datasets (see ``compare_models``)."""
    degree_bins: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32], max_length=64)
    """Upper edges of the node-degree buckets of GNN reports (last bucket is open-ended)."""

    @field_validator("fault_model")
    @classmethod
    def _fault_model_known(cls, v: str) -> str:
        from faultlab.workers.faults.models import FAULT_MODELS

        return _registered(FAULT_MODELS, v)

    @field_validator("target", mode="before")
    @classmethod
    def _target_list(cls, v: Any) -> Any:
        """One target stays a string (the spec of a single-target campaign is unchanged);
        a list is checked here, so an unknown value names ``faults.target`` itself."""
        for item in v if isinstance(v, list | tuple) else [v]:
            if isinstance(v, list | tuple) and item not in TARGETS:
                raise SpecError("faults.target", f"unknown target {item!r} in the list",
                                list(TARGETS))
            if item not in TARGETS:
                raise PydanticCustomError(
                    "literal_error", "unknown target {name}",
                    {"name": repr(item), "expected": ", ".join(repr(t) for t in TARGETS)},
                )
        if not isinstance(v, list | tuple):
            return v
        if not v:
            raise SpecError("faults.target", "must not be empty", list(TARGETS))
        if len(set(v)) != len(v):
            raise SpecError("faults.target", "lists a target twice")
        if {"activation", "embedding"} <= set(v):
            raise SpecError("faults.target", "embedding sites are the activation sites of "
                            "MessagePassing layers: list one of activation, embedding")
        return v[0] if len(v) == 1 else list(v)

    @property
    def targets(self) -> list[str]:
        """Every target of the campaign, in the order the spec lists them."""
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @property
    def multi_target(self) -> bool:
        return not isinstance(self.target, str)

    def for_target(self, target: str) -> FaultParams:
        """These settings with the single ``target`` (how sites of each target are found)."""
        return self.model_copy(update={"target": target})

    @model_validator(mode="after")
    def _consistent(self) -> FaultParams:
        width = min(64 if t == "edge_index" else min(DTYPE_BITS[d] for d in self.dtypes)
                    for t in self.targets)
        if self.bits is not None:
            if not self.bits:
                raise SpecError("faults.bits", "must not be empty (omit it for every bit)")
            for b in self.bits:
                if not (0 <= b < width):
                    raise SpecError(
                        "faults.bits",
                        f"bit {b} is outside the {width}-bit format of dtypes {self.dtypes}",
                        f"0..{width - 1}",
                    )
            if len(set(self.bits)) != len(self.bits):
                raise SpecError("faults.bits", "has duplicates")
            if self.fault_model in BITLESS_MODELS | MULTI_BIT_MODELS:
                raise SpecError(
                    "faults.bits", f"does not apply to fault model {self.fault_model!r}"
                )
        if self.ber is not None:
            if self.bits is not None:
                raise SpecError(
                    "faults.ber", "bit-error-rate mode picks its own bits; drop faults.bits"
                )
            if self.fault_model != "bitflip":
                raise SpecError("faults.ber", "bit-error-rate mode uses the bitflip model",
                                ["bitflip"])
        if self.fault_model in MULTI_BIT_MODELS and self.bit_count > width:
            raise SpecError(
                "faults.bit_count", f"{self.bit_count} bits exceed the {width}-bit format",
                f"2..{width}",
            )
        if self.sampling == "uniform" and self.trials is None:
            raise SpecError("faults.trials", "is required when sampling is 'uniform'")
        if "edge_index" in self.targets and self.dtypes != ["fp32"]:
            raise SpecError("faults.dtypes", "edge_index holds integers; leave dtypes at [fp32]")
        if self.activation_position != "same" and (
                "activation" not in self.targets or self.ber is not None):
            raise SpecError("faults.activation_position",
                            "per_input applies to single activation faults (not bit-error-rate "
                            f"mode); targets are {self.targets}", ["same"])
        if sorted(self.degree_bins) != self.degree_bins or len(set(self.degree_bins)) != len(
            self.degree_bins
        ):
            raise SpecError("faults.degree_bins", "must be strictly increasing")
        names = [m.name for m in self.mitigations]
        if len(set(names)) != len(names):
            raise SpecError("faults.mitigations", "lists a mitigation twice")
        return self

    def bits_for(self, dtype: str, target: str | None = None) -> list[int]:
        """The bit positions faulted in ``dtype`` (of ``target``; default the first)."""
        if self.bits is not None:
            return list(self.bits)
        if (target or self.targets[0]) == "edge_index":
            # Flips above bit 31 make ids absurd (DUE) — still part of the fault space.
            return list(range(64))
        return list(range(DTYPE_BITS[dtype]))

    def summary(self) -> dict[str, Any]:
        """A short description for reports."""
        out = {
            "fault_model": self.fault_model,
            "target": ", ".join(self.targets),
            "targets": self.targets,
            "dtypes": list(self.dtypes),
            "sampling": self.sampling,
            "ber": self.ber,
        }
        if "activation" in self.targets:
            out["activation_position"] = self.activation_position
        return out
