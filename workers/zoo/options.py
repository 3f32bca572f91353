"""Bounded params models of the zoo's ``model.options`` / ``dataset.options``.

Each zoo entry's options are its builder's keyword arguments (plus, for a model, the training
recipe's); :func:`options_model` turns that signature into a pydantic model with a bound on
every number, by option name (:data:`BOUNDS`), so ``model.options: {hidden: 5000000}`` is an
INVALID_ARGUMENT naming ``model.options.hidden`` before anything is allocated, and a campaign
cannot ask a worker to train for a million epochs. An option without a named bound gets a
generic one (:data:`GENERIC_INT`, finite floats).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from faultlab.errors import SpecError
from faultlab.spec import CampaignSpec, DatasetSpec, ModelSpec, iter_sources, model_source

#: ``option name -> (min, max)``, inclusive.
BOUNDS: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("hidden", "width", "feature_dim", "num_features"), (1, 4096)),
    **dict.fromkeys(("depth", "blocks", "hops", "heads"), (1, 64)),
    **dict.fromkeys(("num_nodes", "avg_num_nodes"), (1, 2_000_000)),
    **dict.fromkeys(("dropout", "test_fraction", "p_in", "p_out"), (0.0, 1.0)),
    **dict.fromkeys(("seed", "split_seed", "train_seed"), (0, 2**63 - 1)),
    "num_per_class": (1, 100_000),
    "num_classes": (2, 1000),
    "size": (4, 512),
    "avg_degree": (0.0, 1000.0),
    "noise": (0.0, 100.0),
    "epochs": (1, 1000),
    "batch_size": (1, 65_536),
    "lr": (0.0, 10.0),
    "weight_decay": (0.0, 1.0),
}
GENERIC_INT = (-1_000_000, 1_000_000)
"""Bounds of an integer option without an entry in :data:`BOUNDS`."""

#: The training options every zoo model takes besides its architecture's.
TRAIN_FIELDS: dict[str, Any] = {
    "epochs": int, "lr": float, "weight_decay": float, "batch_size": int, "train_seed": int,
}


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _field(name: str, annotation: Any, default: Any) -> tuple[Any, Any]:
    low, high = BOUNDS.get(name, GENERIC_INT if annotation is int else (-math.inf, math.inf))
    if annotation is int:
        return Annotated[int, Field(ge=int(low), le=int(high), strict=True)], default
    if annotation is float:
        bounded = Field(ge=low, le=high) if math.isfinite(low) else Field()
        return Annotated[float, bounded, AfterValidator(_finite)], default
    return annotation, default


def options_model(
    name: str, fn: Callable[..., Any], *, skip: int = 0, extra: dict[str, Any] | None = None
) -> type[BaseModel]:
    """The params model of ``fn``'s keyword options (its first ``skip`` arguments are not
    options), every number bounded; ``extra`` adds options (name -> type) with no default."""
    fields: dict[str, Any] = {}
    hints = inspect.get_annotations(fn, eval_str=True)
    for param in list(inspect.signature(fn).parameters.values())[skip:]:
        fields[param.name] = _field(param.name, hints.get(param.name, Any), param.default)
    for option, annotation in (extra or {}).items():
        fields.setdefault(option, _field(option, annotation, None))
    model: type[BaseModel] = create_model(
        f"{name}_options", __config__=ConfigDict(extra="forbid", frozen=True), **fields
    )
    return model


#: Options that name a directory of the machine that loads the data: for a worker's own
#: callers (tests, benchmarks), never in a submitted spec (the coordinator opens no spec path).
SERVER_PATH_OPTIONS = frozenset({"root"})


def check_options(spec: CampaignSpec) -> None:
    """Every zoo model's and dataset's options against its params model, wherever the spec
    names one (``faults.compare_models.0.options.hidden``): milliseconds, nothing loaded. A
    submitted spec may not name a server directory (``dataset.options.root``)."""
    from faultlab.workers.zoo.registry import DATASETS, MODELS

    for field, source in iter_sources(spec):
        for option in SERVER_PATH_OPTIONS & set(source.options):
            raise SpecError(f"{field}.options.{option}", "is a directory on the server; a "
                            "coordinator's operator places data under $FAULTLAB_HOME/data")
        if isinstance(source, ModelSpec) and model_source(source.name) == "zoo":
            if source.name in MODELS.names():
                MODELS.parse_params(source.name, source.options, f"{field}.options")
        elif isinstance(source, DatasetSpec) and source.name in DATASETS.names():
            DATASETS.parse_params(source.name, source.options, f"{field}.options")
