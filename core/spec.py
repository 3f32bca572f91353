"""Campaign specs: the one validated description of a campaign.

A spec is YAML/JSON text, a file, a dict or a :class:`CampaignSpec`. Its common part
(kind, name, seed, model, dataset, execution) is defined here; the engine-specific section
sits under a key named after the kind (``faults:``, ``sparsity:``, ``watermark:``,
``sampling:``) and is validated by that engine's pydantic model. This module imports no
torch, so the SDK and CLI validate specs cheaply; the coordinator adds the deep checks that
need the model (layer names, shapes) through the engine's ``validate``.

Every validation failure is a :class:`~faultlab.errors.SpecError` naming the dotted field
and, where there is a closed set, the allowed values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.kinds import KINDS, kind_names, params_model

class StrictModel(BaseModel):
    """Base of every spec model: frozen, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TransformSpec(StrictModel):
    """One model transform (pruning, quantization, low-rank, ...), applied after loading."""

    name: str = Field(min_length=1, max_length=200)
    """Registered transform name (see ``faultlab zoo``)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The transform's parameters (validated by the transform)."""


class ModelSpec(StrictModel):
    """Which model a campaign evaluates."""

    name: str = Field("digits_cnn", min_length=1, max_length=200)
    """Zoo model name (see ``faultlab zoo``), or ``custom`` with ``factory``."""
    factory: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``module:function`` returning an ``nn.Module`` (for your own models)."""
    weights: str | None = None
    """Path to a ``state_dict`` saved with ``torch.save`` for a custom model."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Architecture / training options of the zoo entry (e.g. ``depth``, ``skip``, ``epochs``)."""
    transforms: list[TransformSpec] = Field(default_factory=list, max_length=32)
    """Transforms applied in order to the trained model (e.g. prune then quantize), so any
    campaign can evaluate a compressed model; the model digest covers the result."""


class DatasetSpec(StrictModel):
    """Which inputs a campaign uses."""

    name: str = Field("digits", min_length=1, max_length=200)
    """Zoo dataset name (see ``faultlab zoo``), or ``custom`` with ``factory``."""
    factory: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``module:function`` returning a dataset for your own data."""
    split: Literal["train", "test"] = "test"
    """Which split the campaign's inputs come from."""
    size: int | None = Field(None, ge=1, le=10_000_000)
    """Use at most this many inputs (nodes for a graph); default all of the split."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Generator options (e.g. SBM ``num_nodes``/``blocks``)."""


class ExecutionSpec(StrictModel):
    """How the coordinator runs the campaign (never changes its results)."""

    shard_seconds: float = Field(2.0, gt=0, le=3600)
    """Target compute time of one shard (a Ray task)."""
    max_inflight: int | None = Field(None, ge=1, le=4096)
    """Shards in flight at once (backpressure); default twice the cluster's CPU count."""
    num_gpus: float | Literal["auto"] = "auto"
    """GPUs per shard task: a number (fractions allowed) or ``auto`` (1 when the cluster has GPUs)."""
    num_cpus: float = Field(1.0, gt=0, le=256)
    """CPUs per shard task."""
    max_attempts: int = Field(3, ge=1, le=20)
    """Attempts per shard before its trials are marked FAILED (system failures only)."""
    max_trials: int = Field(2_000_000, ge=1, le=100_000_000)
    """Refuse plans larger than this (guards against absurd sizes)."""


class CampaignSpec(StrictModel):
    """A validated campaign spec; ``params`` is the engine section (``spec.<kind>`` in YAML)."""

    kind: str
    name: str = Field("", max_length=200)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    model: ModelSpec = Field(default_factory=lambda: ModelSpec())
    dataset: DatasetSpec = Field(default_factory=lambda: DatasetSpec())
    execution: ExecutionSpec = Field(default_factory=lambda: ExecutionSpec())
    params: BaseModel

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec, in the same shape as the YAML a user writes."""
        return {
            "kind": self.kind,
            "name": self.name,
            "seed": self.seed,
            "model": self.model.model_dump(mode="json"),
            "dataset": self.dataset.model_dump(mode="json"),
            "execution": self.execution.model_dump(mode="json"),
            self.kind: self.params.model_dump(mode="json"),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def spec_hash(self) -> str:
        """sha256 of the canonical spec (execution settings excluded: they never change results)."""
        data = self.to_dict()
        data.pop("execution")
        data.pop("name")
        return digest(data)

    def replace(self, **changes: Any) -> CampaignSpec:
        """A copy with top-level fields changed (re-validated)."""
        data = self.to_dict()
        data.update(changes)
        return parse_spec(data)


def _first_error(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> SpecError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
    field = ".".join([prefix, *loc] if prefix else loc) or (prefix or "spec")
    ctx = err.get("ctx") or {}
    allowed: Any = ctx.get("expected")
    if err["type"] == "extra_forbidden":
        parent: Any = model
        for part in loc[:-1]:
            ann = getattr(parent, "model_fields", {}).get(part)
            parent = getattr(ann, "annotation", None)
        fields = getattr(parent, "model_fields", None)
        allowed = sorted(fields) if fields else None
        return SpecError(field, "unknown field", allowed)
    value = err.get("input")
    problem = err["msg"]
    if not isinstance(value, dict | list) and err["type"] != "missing":
        problem += f", got {value!r}"
    return SpecError(field, problem, allowed)


def load_spec_source(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Reads YAML/JSON text, a file path or a dict into a plain dict (no validation yet)."""
    if isinstance(source, dict):
        return dict(source)
    text: str
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and len(source) < 4096
        and source.endswith((".yaml", ".yml", ".json"))
    ):
        path = Path(source)
        if not path.is_file():
            raise SpecError("spec", f"file {str(path)!r} does not exist")
        text = path.read_text()
    else:
        text = str(source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError("spec", f"malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise SpecError("spec", f"must be a mapping of fields, got {type(data).__name__}")
    return data


def parse_spec(source: str | Path | dict[str, Any] | CampaignSpec) -> CampaignSpec:
    """Validates a spec from any accepted form; raises :class:`SpecError` naming the field."""
    if isinstance(source, CampaignSpec):
        return source
    data = load_spec_source(source)
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise SpecError("kind", "is required", kind_names())
    model = params_model(kind)
    section = data.pop(kind, None)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise SpecError(kind, f"must be a mapping, got {type(section).__name__}")
    other = sorted(set(data) & (set(KINDS) - {kind}))
    if other:
        raise SpecError(other[0], f"section does not belong to a {kind!r} campaign")
    try:
        params = model.model_validate(section)
    except ValidationError as exc:
        raise _first_error(exc, kind, model) from None
    try:
        return CampaignSpec.model_validate({**data, "params": params})
    except ValidationError as exc:
        err = _first_error(exc, "", CampaignSpec)
        if err.field == "params":
            err = SpecError(kind, err.problem)
        elif err.problem == "unknown field" and err.allowed:
            allowed = sorted({*CampaignSpec.model_fields} - {"params"} | {kind})
            err = SpecError(err.field, "unknown field", allowed)
        raise err from None
