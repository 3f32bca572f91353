"""Campaign specs: the one validated description of a campaign.

A spec is YAML/JSON text, a dict or a :class:`CampaignSpec` (a file only where the caller
passes a :class:`~pathlib.Path`: the SDK and CLI, never the coordinator). Its common part
(kind, name, seed, model, dataset, execution) is defined here; the engine-specific section
sits under a key named after the kind (``faults:``, ``sparsity:``, ``watermark:``,
``sampling:``) and is validated by that engine's pydantic model. This module imports no
torch, so the SDK and CLI validate specs cheaply; the coordinator adds the deep checks that
need the model (layer names, shapes) through the engine's ``validate``.

Specs are data. :func:`~faultlab.spec_text.load_spec_text` bounds the text size, the YAML
aliases, the nesting depth and the expanded node count before anything is built, and never
opens a path. A model or dataset ``file`` is a path on the client; the SDK uploads it and
sends its ``sha256:`` digest, which is all the coordinator accepts (:func:`require_uploaded`).

Every validation failure is a :class:`~faultlab.errors.SpecError` naming the dotted field
and, where there is a closed set, the allowed values; it echoes only a short prefix of the
offending value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.kinds import KINDS, kind_names, params_model
from faultlab.spec_text import load_spec_text, read_spec_file, short

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_FACTORY = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
_LABEL = r"^[^\x00-\x1f\x7f]+$"

ModelSource = Literal["zoo", "torchvision", "pyg", "training", "exported", "custom"]


def is_digest(value: str | None) -> bool:
    """Whether ``value`` is an uploaded artifact's id, ``sha256:<64 hex>``."""
    return value is not None and _DIGEST.fullmatch(value) is not None


def model_source(name: str) -> ModelSource:
    """Where a model name comes from: the zoo, a library by name, an export, or a factory."""
    if name.startswith("torchvision:"):
        return "torchvision"
    if name.startswith("pyg:"):
        return "pyg"
    if name.startswith("training:"):
        return "training"
    if name == "exported":
        return "exported"
    if name == "custom":
        return "custom"
    return "zoo"


def _field_error(field: str, problem: str) -> PydanticCustomError:
    """A cross-field error that :func:`_first_error` reports on ``<model path>.<field>``."""
    return PydanticCustomError("spec_field", "{problem}", {"field": field, "problem": problem})


class StrictModel(BaseModel):
    """Base of every spec model: frozen, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TransformSpec(StrictModel):
    """One model transform (pruning, quantization, low-rank, ...), applied after loading."""

    name: str = Field(min_length=1, max_length=200)
    """Registered transform name (see ``faultlab zoo``)."""
    params: dict[str, Any] = Field(default_factory=dict, max_length=64)
    """The transform's parameters (validated by the transform)."""


class ModelSpec(StrictModel):
    """Which model a campaign evaluates."""

    name: str = Field(
        "digits_cnn", min_length=1, max_length=200,
        pattern=r"^(?:(?:torchvision|pyg|training):)?[A-Za-z_][\w.-]*$",
    )
    """A zoo name (see ``faultlab zoo``); ``pyg:<Class>`` / ``torchvision:<arch>``, built by
    that library from ``options``; ``exported`` (a torch.export program in ``file``); or
    ``custom`` with ``factory``."""
    factory: str | None = Field(None, pattern=_FACTORY)
    """``module:function`` returning an ``nn.Module``, for ``name: custom`` (a coordinator
    runs only factories it allowlists)."""
    file: str | None = Field(None, min_length=1, max_length=4096)
    """Weights (safetensors or a ``torch.save`` state dict) or the ``.pt2`` program: a path
    on the client, sent as its ``sha256:`` digest once uploaded."""
    weights: Literal["random"] | None = None
    """``random`` asks for untrained weights (instead of a ``file``)."""
    label: str | None = Field(None, min_length=1, max_length=100, pattern=_LABEL)
    """The model's name in reports (default: architecture and file stem)."""
    options: dict[str, Any] = Field(default_factory=dict, max_length=64)
    """Architecture / training options of the zoo entry (e.g. ``depth``, ``skip``, ``epochs``)
    or the keyword options of a ``pyg:`` / ``torchvision:`` architecture."""
    transforms: list[TransformSpec] = Field(default_factory=list, max_length=32)
    """Transforms applied in order to the trained model (e.g. prune then quantize), so any
    campaign can evaluate a compressed model; the model digest covers the result."""
    from_campaign: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """A finished training campaign of yours whose trained ``cell`` is the model (resolved
    at submit into ``training:<family>`` with the cell's checkpoint artifact as ``file``)."""
    cell: dict[str, str | int] = Field(default_factory=dict, max_length=4)
    """Which cell of ``from_campaign``: ``variant``, ``recipe``, ``dataset`` names, ``seed``."""

    @model_validator(mode="after")
    def _check_source(self) -> ModelSpec:
        if self.from_campaign or self.cell:
            if not self.from_campaign:
                raise _field_error("cell", "is only for from_campaign")
            if self.file or self.weights or self.factory or self.options:
                raise _field_error("from_campaign", "the campaign's cell is the model: give "
                                   "no file, weights, factory or options")
            return self
        source = model_source(self.name)
        if self.factory and source != "custom":
            raise _field_error("factory", "is only for name 'custom'")
        if source == "custom" and not self.factory:
            raise _field_error("factory", "is required when name is 'custom'")
        if source == "zoo":
            if self.file:
                raise _field_error("file", "a zoo model is trained by faultlab; file is for "
                                   "exported, pyg:<Class>, torchvision:<arch> and custom models")
            if self.weights:
                raise _field_error("weights", "a zoo model is trained by faultlab; weights is "
                                   "for pyg:<Class>, torchvision:<arch> and custom models")
        elif source == "exported":
            if not self.file:
                raise _field_error("file", "is required for name 'exported' (a .pt2 program)")
            if self.weights or self.options:
                bad = "weights" if self.weights else "options"
                raise _field_error(bad, "an exported program carries its own architecture "
                                   "and weights")
        elif bool(self.file) == bool(self.weights):
            raise _field_error("file", f"model {short(self.name)} takes its weights from file, "
                               "or weights: random for untrained ones (exactly one of them)")
        return self


class DatasetSpec(StrictModel):
    """Which inputs a campaign uses."""

    name: str = Field("digits", min_length=1, max_length=200, pattern=r"^[A-Za-z_][\w.-]*$")
    """Zoo dataset name (see ``faultlab zoo``); ``tensors`` with ``file``; or ``custom`` with
    ``factory``."""
    factory: str | None = Field(None, pattern=_FACTORY)
    """``module:function`` returning a dataset, for ``name: custom`` (allowlisted)."""
    file: str | None = Field(None, min_length=1, max_length=4096)
    """Safetensors file of ``name: tensors`` (keys ``x_train, y_train, x_test, y_test`` for
    images; ``x, edge_index, y, train_mask, test_mask`` for a graph): a client path, sent as
    its ``sha256:`` digest once uploaded."""
    label: str | None = Field(None, min_length=1, max_length=100, pattern=_LABEL)
    """The dataset's name in reports (default: ``name`` or the file stem)."""
    split: Literal["train", "test"] = "test"
    """Which split the campaign's inputs come from."""
    size: int | None = Field(None, ge=1, le=10_000_000)
    """Use at most this many inputs (nodes for a graph); default all of the split."""
    options: dict[str, Any] = Field(default_factory=dict, max_length=64)
    """Generator options (e.g. SBM ``num_nodes``/``blocks``)."""

    @model_validator(mode="after")
    def _check_source(self) -> DatasetSpec:
        if self.factory and self.name != "custom":
            raise _field_error("factory", "is only for name 'custom'")
        if self.name == "custom" and not self.factory:
            raise _field_error("factory", "is required when name is 'custom'")
        if self.name == "tensors" and not self.file:
            raise _field_error("file", "is required for name 'tensors' (a safetensors file)")
        if self.file and self.name != "tensors":
            raise _field_error("file", "is only for name 'tensors'")
        return self
class ExecutionSpec(StrictModel):
    """How the coordinator runs the campaign (never changes its results)."""

    shard_seconds: float = Field(2.0, gt=0, le=3600)
    """Target compute time of one shard (a Ray task)."""
    max_inflight: int | None = Field(None, ge=1, le=4096)
    """Shards in flight at once (backpressure); default twice the cluster's CPU count."""
    num_gpus: float | Literal["auto"] = "auto"
    """GPUs per shard task: a number (fractions allowed) or ``auto`` (1 when the cluster has
    GPUs)."""
    num_cpus: float = Field(1.0, gt=0, le=256)
    """CPUs per shard task."""
    allow_tf32: bool = False
    """Let GPU matmuls/convolutions use TF32 (faster, ~10 mantissa bits): off by default, so a
    GPU campaign classifies outcomes with full fp32 arithmetic."""
    batch_faults: Annotated[int, Field(ge=1, le=4096)] | Literal["auto", "off"] = "auto"
    """Fault trials per batched forward (weight/bias faults): ``auto`` measures batched against
    sequential once per shard and uses the faster, ``off`` runs one trial per forward, a number
    caps K (K is also bounded by the device's free memory). Results never depend on it."""
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


def iter_sources(spec: CampaignSpec) -> Iterator[tuple[str, ModelSpec | DatasetSpec]]:
    """Every model and dataset of a campaign with its dotted field (``model``,
    ``faults.compare_models.0``, ...), wherever the kind's section holds them."""
    yield "model", spec.model
    yield "dataset", spec.dataset
    stack: list[tuple[str, Any]] = [(spec.kind, spec.params)]
    while stack:
        field, value = stack.pop()
        if isinstance(value, ModelSpec | DatasetSpec):
            yield field, value
        elif isinstance(value, BaseModel):
            stack.extend((f"{field}.{k}", getattr(value, k)) for k in type(value).model_fields)
        elif isinstance(value, list | tuple):
            stack.extend((f"{field}.{i}", v) for i, v in enumerate(value))


def require_uploaded(spec: CampaignSpec) -> None:
    """Refuses a spec whose model or dataset ``file`` is not an uploaded artifact's digest: the
    coordinator never opens a path named by a spec."""
    for field, source in iter_sources(spec):
        if source.file is not None and not is_digest(source.file):
            raise SpecError(
                f"{field}.file",
                f"must be the sha256:<hex> digest of an uploaded artifact, got "
                f"{short(source.file)}; the SDK and CLI upload client files and send digests",
            )


def model_label(model: ModelSpec) -> str:
    """A model's name in reports: its ``label``, else its architecture (the SDK sets ``label``
    from the file stem, which only the client knows)."""
    if model.label:
        return model.label
    if model.factory:
        return model.factory.replace(":", ".")
    return model.name


def dataset_label(dataset: DatasetSpec) -> str:
    """A dataset's name in reports: its ``label``, else its name (or factory)."""
    if dataset.label:
        return dataset.label
    if dataset.factory:
        return dataset.factory.replace(":", ".")
    return dataset.name


def workload_label(spec: CampaignSpec) -> str:
    """``<model>@<dataset>`` of a campaign's main workload (never ``custom@custom``)."""
    return f"{model_label(spec.model)}@{dataset_label(spec.dataset)}"


def _first_error(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> SpecError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
    ctx = err.get("ctx") or {}
    if err["type"] == "spec_field":
        loc.append(str(ctx["field"]))
    field = ".".join([prefix, *loc] if prefix else loc) or (prefix or "spec")
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
    problem = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] in ("enum", "literal_error"):  # the allowed values are listed once, below
        allowed = re.findall(r"'([^']*)'", str(allowed))
        problem = f"unknown value {short(value)}"
    elif (err["type"] not in ("missing", "spec_field") and not isinstance(value, dict | list)
          and short(value) not in problem):
        problem += f", got {short(value)}"
    return SpecError(field, problem, allowed)


def parse_spec(source: str | Path | dict[str, Any] | CampaignSpec) -> CampaignSpec:
    """Validates a spec; raises :class:`SpecError` naming the field.

    A ``str`` is always spec text (the coordinator's case); only a :class:`~pathlib.Path` is
    read as a file (the SDK's and CLI's case)."""
    if isinstance(source, CampaignSpec):
        return source
    if isinstance(source, dict):
        data = dict(source)
    elif isinstance(source, Path):
        data = read_spec_file(source)
    else:
        data = load_spec_text(source)
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
        elif err.problem == "unknown field" and "." not in err.field:
            allowed = sorted({*CampaignSpec.model_fields} - {"params"} | {kind})
            err = SpecError(err.field, "unknown field", allowed)
        raise err from None
