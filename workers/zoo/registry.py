"""Registries of zoo models and datasets, the trained-model cache, and content digests.

Models and datasets register themselves by name with :func:`register_model` /
:func:`register_dataset` in the modules of this package (discovered automatically, one file
per family). A zoo model is trained on first use with a fixed recipe and seed, and cached on
disk under ``$FAULTLAB_HOME/zoo`` by the content hash of (model, options, dataset, seed), so
every worker and every later campaign gets the same weights without a download.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.registry import Registry
from faultlab.spec import DatasetSpec, ModelSpec, model_source
from faultlab.workers.artifact_cache import ArtifactCache
from faultlab.workers.zoo.options import TRAIN_FIELDS, options_model
from faultlab.workers.zoo.provided import current_artifacts

#: Trained zoo models: ``$FAULTLAB_HOME/zoo/<model>-<key[:16]>.pt`` (state dicts).
_TRAINED = ArtifactCache("zoo")


@dataclass
class ImageData:
    """An image classification dataset: tensors N×C×H×W (float32) and labels (int64)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    kind: str = "image"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.x_train, self.y_train) if name == "train" else (self.x_test, self.y_test)

    @property
    def digest(self) -> str:
        return tensors_digest([self.x_train, self.y_train, self.x_test, self.y_test])


@dataclass
class GraphData:
    """A node classification graph (PyG ``Data`` with ``train_mask`` / ``test_mask``)."""

    name: str
    data: Any  # torch_geometric.data.Data
    num_classes: int
    kind: str = "graph"

    @property
    def num_features(self) -> int:
        return int(self.data.num_node_features)

    def split(self, name: str) -> torch.Tensor:
        """Node ids of a split."""
        mask = self.data.train_mask if name == "train" else self.data.test_mask
        return mask.nonzero().flatten()

    @property
    def digest(self) -> str:
        d = self.data
        parts = [d.x, d.edge_index, d.y, d.train_mask, d.test_mask]
        if getattr(d, "edge_weight", None) is not None:
            parts.append(d.edge_weight)
        return tensors_digest(parts)


Dataset = ImageData | GraphData


@dataclass
class ModelEntry:
    """A zoo model: how to build it for a dataset, and how to train it."""

    name: str
    task: str  # "image" or "graph"
    build: Callable[..., nn.Module]
    description: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetEntry:
    name: str
    task: str
    load: Callable[..., Dataset]
    description: str = ""


#: Zoo models and datasets, registered by the modules of this package (``model.name`` and
#: ``dataset.name`` in a spec).
MODELS: Registry[ModelEntry] = Registry("zoo model", "faultlab.workers.zoo", "model.name")
DATASETS: Registry[DatasetEntry] = Registry("dataset", "faultlab.workers.zoo", "dataset.name")
_LOCK = threading.Lock()


def register_model(
    name: str, *, task: str, description: str = "", **recipe: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Registers ``build(dataset, **options) -> nn.Module`` under ``name``.

    ``recipe`` holds the default training options (``epochs``, ``lr``, ``weight_decay``,
    ``batch_size``); a spec's ``model.options`` overrides them.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        doc = description or (fn.__doc__ or "").strip()
        params = options_model(name, fn, skip=1, extra=TRAIN_FIELDS)
        MODELS.register(name, params=params)(ModelEntry(name, task, fn, doc, recipe))
        return fn

    return deco


def register_dataset(
    name: str, *, task: str, description: str = ""
) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Registers ``load(seed, **options) -> ImageData | GraphData`` under ``name``."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        doc = description or (fn.__doc__ or "").strip()
        params = options_model(name, fn)
        DATASETS.register(name, params=params)(DatasetEntry(name, task, fn, doc))
        return fn

    return deco


def model_entries() -> dict[str, ModelEntry]:
    return {name: method.impl for name, method in MODELS.entries().items()}


def dataset_entries() -> dict[str, DatasetEntry]:
    return {name: method.impl for name, method in DATASETS.entries().items()}


def tensors_digest(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(
            t.numpy().tobytes()
            if t.dtype != torch.bfloat16
            else t.view(torch.int16).numpy().tobytes()
        )
    return h.hexdigest()


def state_value_digest(value: Any) -> str:
    """Digest of one ``state_dict`` entry: a tensor (a quantized one by its stored integers and
    quantization parameters), a tuple of them (packed int8 params), or anything else by repr."""
    if isinstance(value, torch.Tensor) and value.is_quantized:
        if value.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            qparams = [torch.tensor(value.q_scale()), torch.tensor(value.q_zero_point())]
        else:
            qparams = [value.q_per_channel_scales(), value.q_per_channel_zero_points(),
                       torch.tensor(value.q_per_channel_axis())]
        return tensors_digest([value.int_repr(), *qparams])
    if isinstance(value, torch.Tensor):
        return tensors_digest([value])
    if isinstance(value, tuple | list):
        return digest([state_value_digest(v) for v in value])
    return hashlib.sha256(repr(value).encode()).hexdigest()


def model_digest(model: nn.Module) -> str:
    """sha256 of a model's state (names, shapes, dtypes and bytes)."""
    state = model.state_dict()
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state_value_digest(state[name]).encode())
    return h.hexdigest()


def _custom(factory: str, what: str) -> Callable[..., Any]:
    """The factory callable ``module:attr`` (the coordinator checked its module against the
    operator's allowlist before anything imported it)."""
    module, _, attr = factory.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{what}.factory", f"cannot import {factory[:80]!r}: {exc}") from None
    if not callable(fn):
        raise SpecError(f"{what}.factory", f"{factory[:80]!r} is not callable")
    return fn  # type: ignore[no-any-return]


_DATA_CACHE: dict[str, Dataset] = {}


def _check_task(data: Dataset, task: str | None) -> Dataset:
    if task is not None and data.kind != task:
        raise SpecError("dataset.name", f"a {data.kind} dataset where a {task} one is needed")
    return data


def load_dataset(spec: DatasetSpec, *, task: str | None = None) -> Dataset:
    """Loads (or generates) a dataset; ``task`` restricts to ``image`` or ``graph``.

    Kept in memory by the spec, which names an artifact by its digest; a factory's dataset
    is rebuilt every time (its code may change behind the same spec)."""
    if spec.factory:
        data = _custom(spec.factory, "dataset")(**spec.options)
        if not isinstance(data, ImageData | GraphData):
            raise SpecError("dataset.factory", "must return ImageData or GraphData")
        return _check_task(data, task)
    key = digest(spec.model_dump(mode="json"))
    if key in _DATA_CACHE:
        return _check_task(_DATA_CACHE[key], task)
    if spec.name == "tensors":
        from faultlab.workers.zoo.sources import load_dataset_from_source

        data, _ = load_dataset_from_source(spec, current_artifacts())
        data = _check_task(data, task)
    else:
        entries = dataset_entries()
        allowed = sorted(n for n, e in entries.items() if task is None or e.task == task)
        entry = entries.get(spec.name)
        if entry is None or (task is not None and entry.task != task):
            raise SpecError("dataset.name", f"unknown dataset {spec.name!r}", allowed)
        DATASETS.parse_params(spec.name, spec.options, "dataset.options")
        try:
            data = entry.load(**spec.options)
        except TypeError as exc:
            raise SpecError("dataset.options", str(exc)) from None
    _DATA_CACHE[key] = data
    return data


def _factory_model(spec: ModelSpec) -> nn.Module:
    model = _custom(str(spec.factory), "model")(**spec.options)
    if not isinstance(model, nn.Module):
        raise SpecError("model.factory", "must return a torch.nn.Module")
    return model


def build_model(spec: ModelSpec, data: Dataset) -> nn.Module:
    """An untrained model skeleton for ``data`` (cheap: used to validate layer names).

    An exported program or a library architecture is built from the current artifacts
    (:mod:`faultlab.workers.zoo.provided`), with its weights."""
    source = model_source(spec.name)
    if source == "custom":
        return _factory_model(spec)
    if source != "zoo":
        from faultlab.workers.zoo.sources import build_model_from_source

        return build_model_from_source(spec, current_artifacts(), data=data)[0]
    entries = model_entries()
    entry = entries.get(spec.name)
    allowed = sorted(n for n, e in entries.items() if e.task == data.kind)
    if entry is None or entry.task != data.kind:
        raise SpecError(
            "model.name", f"unknown {data.kind} model {spec.name!r} for dataset {data.name!r}",
            allowed
        )
    MODELS.parse_params(spec.name, spec.options, "model.options")
    arch = {k: v for k, v in spec.options.items() if k not in TRAIN_OPTIONS}
    try:
        return entry.build(data, **arch)
    except TypeError as exc:
        raise SpecError("model.options", str(exc)) from None


TRAIN_OPTIONS = frozenset({"epochs", "lr", "weight_decay", "batch_size", "train_seed"})
_MODEL_CACHE: dict[str, tuple[nn.Module, str]] = {}


def _cached(key: str, make: Callable[[], tuple[nn.Module, str]]) -> tuple[nn.Module, str]:
    with _LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
    result = make()
    with _LOCK:
        _MODEL_CACHE[key] = result
    return result


def _transformed(spec: ModelSpec, data: Dataset, seed: int) -> tuple[nn.Module, str]:
    """Transforms start from the very weights of the untransformed model (trained and cached
    once): a compressed twin is exactly the dense model, compressed — never a retrained copy.
    Keyed by the base model's content digest, so a changed base is never served stale."""
    from faultlab.workers.transforms import apply_transforms

    base, base_digest = trained_model(spec.model_copy(update={"transforms": []}), data, seed)
    key = digest({"base": base_digest, "data": data.digest, "seed": seed,
                  "transforms": [t.model_dump(mode="json") for t in spec.transforms]})

    def make() -> tuple[nn.Module, str]:
        model = apply_transforms(copy.deepcopy(base), data, list(spec.transforms), seed=seed)
        model.eval()
        return model, model_digest(model)

    return _cached(key, make)


def _user_model(spec: ModelSpec, data: Dataset, seed: int) -> tuple[nn.Module, str]:
    """A factory's model (weights from its ``file``, or ``weights: random`` from ``seed``) and
    the digest of the built weights: built every time, since the factory's code may change."""
    from faultlab.workers.zoo.sources import artifact_bytes
    from faultlab.workers.zoo.sources.weights import load_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _factory_model(spec)
    if spec.file:
        load_weights(model, artifact_bytes(current_artifacts(), spec.file, "model.file"),
                     "model.file")
    model.eval()
    return model, model_digest(model)


def _zoo_model(spec: ModelSpec, data: Dataset, seed: int, key: str) -> tuple[nn.Module, str]:
    from faultlab.workers.zoo.training import train_model

    with torch.random.fork_rng(devices=[]):
        # Initial weights must not depend on what this process drew before: the cache key
        # promises the same weights for the same (model, options, dataset, seed) everywhere.
        torch.manual_seed(int(spec.options.get("train_seed", seed)))
        model = build_model(spec, data)
    stored = _TRAINED.load_torch(f"{spec.name}-{key[:16]}")
    if stored is not None:
        model.load_state_dict(stored)
    else:
        entry = model_entries()[spec.name]
        recipe = {**entry.recipe, **{k: v for k, v in spec.options.items() if k in TRAIN_OPTIONS}}
        train_model(model, data, seed=int(recipe.pop("train_seed", seed)), **recipe)
        _TRAINED.save_torch(f"{spec.name}-{key[:16]}", model.state_dict())
    model.eval()
    return model, model_digest(model)


def trained_model(spec: ModelSpec, data: Dataset, seed: int = 0) -> tuple[nn.Module, str]:
    """The model to evaluate and its content digest (the identity in cache keys/provenance).

    A zoo model is trained once and cached; an exported program or a library architecture
    loads its uploaded weights (:mod:`faultlab.workers.zoo.sources`), named by their digest; a
    factory's model is built and digested every time. The returned model is in eval mode;
    callers must not keep changes to it.
    """
    if spec.transforms:
        return _transformed(spec, data, seed)
    source = model_source(spec.name)
    if source == "custom":
        return _user_model(spec, data, seed)
    # The spec names artifacts by digest, and the recipe's defaults are part of the key:
    # changing a zoo model's default epochs must not keep serving weights trained with the old.
    entry = model_entries().get(spec.name) if source == "zoo" else None
    key = digest({"model": spec.model_dump(mode="json"), "data": data.digest, "seed": seed,
                  "recipe": entry.recipe if entry else {}})
    if source == "zoo":
        return _cached(key, lambda: _zoo_model(spec, data, seed, key))
    from faultlab.workers.zoo.sources import build_model_from_source

    return _cached(key, lambda: build_model_from_source(
        spec, current_artifacts(), data=data, seed=seed))
