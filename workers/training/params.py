"""The ``training:`` section of a campaign spec (pydantic; no torch, so the SDK validates cheaply).

A training campaign sweeps model variants × recipes × datasets × seeds; each cell is one
full-batch training run on a node-classification graph, recorded with its learning curves.
It exists to test claims about training dynamics, e.g.

* Xu, Zhang, Jegelka, Kawaguchi, "Optimization of Graph Neural Networks: Implicit
  Acceleration by Skip Connections and More Depth" (ICML 2021): gradient descent on a
  linearized GNN converges to a global minimum at a linear rate,
  ``L(t) − L* ≤ (1 − ηλ)^t (L(0) − L*)``, and skip connections, depth and a good label
  distribution make the rate faster;
* Wu et al., "Simplifying Graph Convolutional Networks" (ICML 2019): ``softmax(S^K X W)``
  with ``S = D^-1/2 (A + I) D^-1/2`` precomputed keeps the accuracy of a GCN and trains far
  faster.

See docs/training.md.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from faultlab.spec import StrictModel

Family = Literal["gcn", "gin", "sgc"]
Skip = Literal["none", "residual", "initial_residual", "jk"]
Norm = Literal["none", "batch", "layer"]
Optimizer = Literal["sgd", "adam"]
Schedule = Literal["constant", "cosine", "step"]

MAX_DEPTH = 64
MAX_WIDTH = 4096


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _default_families() -> list[Family]:
    return ["gcn"]


def _default_skips() -> list[Skip]:
    return ["none"]


def _default_norms() -> list[Norm]:
    return ["none"]


class VariantGrid(StrictModel):
    """A grid of model variants: every combination of the lists is one variant.

    ``depth`` is the number of graph convolutions (for ``sgc`` the propagation power ``K``).
    ``sgc`` is linear by construction and has no width, skips or normalisation: its cells
    take one value of each whatever the grid says (duplicates are dropped).
    """

    family: list[Family] = Field(default_factory=_default_families, min_length=1, max_length=3)
    """Model families: ``gcn`` (Kipf & Welling), ``gin`` (Xu et al., ICLR 2019), ``sgc``."""
    depth: list[int] = Field(default_factory=lambda: [2], min_length=1, max_length=64)
    """Graph convolutions per model (sgc: hops K), each in 1..64."""
    width: list[int] = Field(default_factory=lambda: [32], min_length=1, max_length=16)
    """Hidden channels, each in 1..4096."""
    skip: list[Skip] = Field(default_factory=_default_skips, min_length=1, max_length=4)
    """Skip connections: ``none``, ``residual``, ``initial_residual`` (GCNII) or ``jk``."""
    linear: list[bool] = Field(default_factory=lambda: [False], min_length=1, max_length=2)
    """``true``: the linearized GNN of Xu et al. (identity activations)."""
    norm: list[Norm] = Field(default_factory=_default_norms, min_length=1, max_length=3)
    """Normalisation after each convolution (``batch`` / ``layer`` break exact linearity)."""
    bias: bool = False
    """Biases in every layer; off by default so that a linear variant is linear, not affine."""

    @field_validator("depth")
    @classmethod
    def _depths(cls, v: list[int]) -> list[int]:
        for d in v:
            if not 1 <= d <= MAX_DEPTH:
                raise ValueError(f"depths must lie in 1..{MAX_DEPTH}, got {d!r}")
        return _unique(v)

    @field_validator("width")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        for w in v:
            if not 1 <= w <= MAX_WIDTH:
                raise ValueError(f"widths must lie in 1..{MAX_WIDTH}, got {w!r}")
        return _unique(v)

    @field_validator("family", "skip", "linear", "norm")
    @classmethod
    def _dedupe(cls, v: list[Any]) -> list[Any]:
        return _unique(v)

    def expand(self) -> list[dict[str, Any]]:
        """The variants of the grid as plain dicts (with their ``name``), in grid order."""
        out: dict[str, dict[str, Any]] = {}
        grid = itertools.product(self.family, self.depth, self.width, self.skip, self.linear,
                                 self.norm)
        for family, depth, width, skip, linear, norm in grid:
            if family == "sgc":
                width, skip, linear, norm = 0, "none", True, "none"
            variant = {"family": family, "depth": depth, "width": width, "skip": skip,
                       "linear": linear, "norm": norm, "bias": self.bias}
            out.setdefault(variant_name(variant), variant)
        return [{"name": name, **v} for name, v in out.items()]


def variant_name(v: dict[str, Any]) -> str:
    """A readable, unique label: ``gcn-d4-w32-residual-linear``, ``sgc-k2``."""
    if v["family"] == "sgc":
        return f"sgc-k{v['depth']}"
    parts = [v["family"], f"d{v['depth']}", f"w{v['width']}", v["skip"],
             "linear" if v["linear"] else "relu"]
    if v["norm"] != "none":
        parts.append(f"{v['norm']}norm")
    if v["bias"]:
        parts.append("bias")
    return "-".join(parts)


class LabelSpec(StrictModel):
    """Which training-pool nodes carry labels (the label distribution of Xu et al.).

    The pool is the dataset's train split; the labelled nodes are drawn from it per seed,
    and the rest of the pool is the validation set (the dataset's own ``val_mask`` when it
    has one).
    """

    per_class: int | None = Field(None, ge=1, le=1_000_000)
    """Labelled nodes per class (balanced by construction)."""
    fraction: float | None = Field(None, gt=0.0, le=1.0)
    """Fraction of the pool labelled (default: all of it when ``per_class`` is unset)."""
    balanced: bool = True
    """With ``fraction``: draw stratified by class (true) or uniformly (false)."""

    @model_validator(mode="after")
    def _one_rule(self) -> LabelSpec:
        if self.per_class is not None and self.fraction is not None:
            raise ValueError("give per_class or fraction, not both")
        return self


class Recipe(StrictModel):
    """How one cell is trained: full-batch gradient steps on the labelled nodes."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:+-]+$")
    """Cell label (default: derived from the settings)."""
    optimizer: Optimizer = "adam"
    """``sgd`` (full batch: gradient descent, as in Xu et al.) or ``adam``."""
    lr: float = Field(0.01, gt=0.0, le=10.0)
    """Learning rate, in (0, 10]."""
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """SGD momentum."""
    schedule: Schedule = "constant"
    """Learning-rate schedule over ``epochs``: constant, cosine annealing, or step (×0.1 at
    1/2 and 3/4 of the budget)."""
    epochs: int = Field(200, ge=1, le=100_000)
    """Full-batch steps, the budget (at most 100,000)."""
    loss_target: float | None = Field(None, gt=0.0, le=100.0)
    """Stop once the training loss is at or below this; a cell that never gets there within
    ``epochs`` is marked ``target_not_reached``."""
    weight_decay: float = Field(0.0, ge=0.0, le=10.0)
    """L2 penalty (optimizer weight decay)."""
    labels: LabelSpec = Field(default_factory=lambda: LabelSpec.model_validate({}))
    """Label distribution."""

    def label(self) -> str:
        if self.name:
            return self.name
        parts = [self.optimizer, f"lr{self.lr:g}", f"e{self.epochs}"]
        if self.schedule != "constant":
            parts.append(self.schedule)
        return "-".join(parts)


class TrainingDataset(StrictModel):
    """A zoo graph dataset of the sweep."""

    name: str = Field("karate", min_length=1, max_length=200)
    """Zoo graph dataset (``karate``, ``sbm``, ``fake``, ``planetoid`` …)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Generator / loader options (e.g. SBM ``num_nodes``)."""
    label: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:+-]+$")
    """Label in the report (default: the name, with ``num_nodes`` when given)."""

    def resolved_label(self) -> str:
        if self.label:
            return self.label
        nodes = self.options.get("num_nodes")
        return f"{self.name}{nodes}" if nodes is not None else self.name


class Targets(StrictModel):
    """Thresholds of the speed metrics: steps to a training loss, time to an accuracy."""

    loss: float | None = Field(None, gt=0.0, le=100.0)
    """Absolute training-loss target (default: each recipe's ``loss_target``)."""
    loss_ratio: float | None = Field(0.1, gt=0.0, lt=1.0)
    """Relative target: the first step whose loss is ≤ ``loss_ratio`` × the initial loss
    (used when no absolute target applies)."""
    accuracy: float = Field(0.9, gt=0.0, le=1.0)
    """Accuracy target of time-to-accuracy."""
    accuracy_split: Literal["train", "val", "test"] = "train"
    """Which accuracy ``accuracy`` applies to."""


GRAPH_FIELDS = ("variants", "recipes", "datasets", "targets")
"""The top-level fields that belong to the ``graph`` workload."""
WORKLOAD_SECTIONS = ("image", "hyperspectral")
"""The other workloads' sections (``training.<workload>``)."""


def _spec_field(field: str, problem: str, allowed: list[str] | str | None = None
                ) -> PydanticCustomError:
    ctx: dict[str, Any] = {"field": field, "problem": problem}
    if allowed is not None:
        ctx["expected"] = allowed
    return PydanticCustomError("spec_field", "{problem}", ctx)


def _section_error(name: str, exc: ValidationError, model: type[BaseModel]
                   ) -> PydanticCustomError:
    """The first error of a workload section as a spec error on ``<name>.<path>``."""
    from faultlab.spec import _first_error  # the parser's own reading of an error

    err = _first_error(exc, name, model)
    return _spec_field(err.field, err.problem, err.allowed)


@functools.cache
def _graph_defaults() -> dict[str, Any]:
    return TrainingParams.model_validate({}).model_dump(mode="json")


def _json(value: Any) -> Any:
    """``value`` as the JSON a dump holds (a list of models too)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _workload_section(data: Any) -> Any:
    """Checks ``workload`` and validates its section ``training.<workload>`` with the
    workload's own model (errors name ``training.<workload>.<field>``); the section is kept
    as its normalised JSON (defaults filled in), so stored specs replay identically."""
    if not isinstance(data, dict):
        return data
    from faultlab.workers.training.workloads.base import WORKLOADS

    name = data.get("workload", "graph")
    names = WORKLOADS.names()
    if not isinstance(name, str) or name not in names:
        raise _spec_field("workload", f"unknown training workload {str(name)[:40]!r}", names)
    for other in WORKLOAD_SECTIONS:
        if other != name and data.get(other) is not None:
            raise _spec_field(other, f"is the {other} workload's section; set workload: "
                              f"{other} to use it (workload is {name!r})")
    if name == "graph":
        return data
    defaults = _graph_defaults()
    for field in GRAPH_FIELDS:  # a stored spec holds their defaults: those are fine
        if field in data and _json(data[field]) != defaults[field]:
            raise _spec_field(field, f"belongs to the graph workload; the {name} workload "
                              f"takes its settings under training.{name}")
    model = WORKLOADS.get(name).params
    try:
        section = model.model_validate(data.get(name) or {})
    except ValidationError as exc:
        raise _section_error(name, exc, model) from None
    return {**data, name: section.model_dump(mode="json")}


class TrainingParams(StrictModel):
    """The ``training:`` section of a training campaign."""

    workload: str = "graph"
    """What is trained: ``graph`` (GNN variants on node classification, the fields below),
    ``image`` (zoo CNNs with training recipes: MoEx, mixup, cutmix, frequency-domain input;
    section ``training.image``) or ``hyperspectral`` (section ``training.hyperspectral``)."""
    image: dict[str, Any] | None = None
    """The ``image`` workload's settings (see docs/recipes.md)."""
    hyperspectral: dict[str, Any] | None = None
    """The ``hyperspectral`` workload's settings (see docs/recipes.md)."""
    variants: list[VariantGrid] = Field(
        default_factory=lambda: [VariantGrid.model_validate({})], min_length=1, max_length=64)
    """Grids of model variants (their union is swept)."""
    recipes: list[Recipe] = Field(
        default_factory=lambda: [Recipe.model_validate({})], min_length=1, max_length=64)
    """Training recipes."""
    datasets: list[TrainingDataset] = Field(
        default_factory=lambda: [TrainingDataset.model_validate({})], min_length=1,
        max_length=64)
    """Graph datasets."""
    seeds: int = Field(5, ge=1, le=1000)
    """Repetitions of every cell with seeds ``seed, seed+1, …`` (initialisation and the
    labelled nodes); every figure carries a CI over them."""
    targets: Targets = Field(default_factory=lambda: Targets.model_validate({}))
    """Thresholds of steps-to-target-loss and time-to-target-accuracy."""
    curve_points: int = Field(200, ge=2, le=10_000)
    """Points kept per learning curve (evenly strided over the steps run)."""

    @model_validator(mode="before")
    @classmethod
    def _workload(cls, data: Any) -> Any:
        return _workload_section(data)

    @field_validator("recipes")
    @classmethod
    def _unique_recipes(cls, v: list[Recipe]) -> list[Recipe]:
        names = [r.label() for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe labels must be unique, got {names}")
        return v

    @field_validator("datasets")
    @classmethod
    def _unique_datasets(cls, v: list[TrainingDataset]) -> list[TrainingDataset]:
        names = [d.resolved_label() for d in v]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset labels must be unique (set label:), got {names}")
        return v

    def all_variants(self) -> list[dict[str, Any]]:
        """The union of the variant grids, without duplicates, in spec order."""
        out: dict[str, dict[str, Any]] = {}
        for grid in self.variants:
            for v in grid.expand():
                out.setdefault(v["name"], v)
        return list(out.values())


__all__ = ["GRAPH_FIELDS", "WORKLOAD_SECTIONS", "LabelSpec", "Recipe", "Targets",
           "TrainingDataset", "TrainingParams", "VariantGrid", "variant_name"]
