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
import io
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.spec import DatasetSpec, ModelSpec
from faultlab.registry import import_submodules


def faultlab_home() -> Path:
    """Where faultlab keeps its caches and the embedded store (``$FAULTLAB_HOME``)."""
    home = Path(os.environ.get("FAULTLAB_HOME", Path.home() / ".cache" / "faultlab"))
    home.mkdir(parents=True, exist_ok=True)
    return home


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


_MODELS: dict[str, ModelEntry] = {}
_DATASETS: dict[str, DatasetEntry] = {}
_LOCK = threading.Lock()


def register_model(
    name: str, *, task: str, description: str = "", **recipe: Any
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Registers ``build(dataset, **options) -> nn.Module`` under ``name``.

    ``recipe`` holds the default training options (``epochs``, ``lr``, ``weight_decay``,
    ``batch_size``); a spec's ``model.options`` overrides them.
    """

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name] = ModelEntry(name, task, fn, description or (fn.__doc__ or "").strip(), recipe)
        return fn

    return deco


def register_dataset(
    name: str, *, task: str, description: str = ""
) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Registers ``load(seed, **options) -> ImageData | GraphData`` under ``name``."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _DATASETS[name] = DatasetEntry(name, task, fn, description or (fn.__doc__ or "").strip())
        return fn

    return deco


def _discover() -> None:
    import_submodules("faultlab.workers.zoo")


def model_entries() -> dict[str, ModelEntry]:
    _discover()
    return dict(_MODELS)


def dataset_entries() -> dict[str, DatasetEntry]:
    _discover()
    return dict(_DATASETS)


def tensors_digest(tensors: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def _state_value_digest(value: Any) -> str:
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
        return digest([_state_value_digest(v) for v in value])
    return hashlib.sha256(repr(value).encode()).hexdigest()


def model_digest(model: nn.Module) -> str:
    """sha256 of a model's state (names, shapes, dtypes and bytes)."""
    state = model.state_dict()
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(_state_value_digest(state[name]).encode())
    return h.hexdigest()


def _custom(factory: str, what: str) -> Callable[..., Any]:
    module, _, attr = factory.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{what}.factory", f"cannot import {factory!r}: {exc}") from None
    if not callable(fn):
        raise SpecError(f"{what}.factory", f"{factory!r} is not callable")
    return fn  # type: ignore[no-any-return]


_DATA_CACHE: dict[str, Dataset] = {}


def load_dataset(spec: DatasetSpec, *, task: str | None = None) -> Dataset:
    """Loads (or generates) a dataset; ``task`` restricts to ``image`` or ``graph``."""
    key = digest(spec.model_dump(mode="json"))
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    if spec.name == "custom" or spec.factory:
        if not spec.factory:
            raise SpecError("dataset.factory", "is required when dataset.name is 'custom'")
        data = _custom(spec.factory, "dataset")(**spec.options)
        if not isinstance(data, ImageData | GraphData):
            raise SpecError("dataset.factory", "must return ImageData or GraphData")
    else:
        entries = dataset_entries()
        allowed = sorted(n for n, e in entries.items() if task is None or e.task == task)
        entry = entries.get(spec.name)
        if entry is None or (task is not None and entry.task != task):
            raise SpecError("dataset.name", f"unknown dataset {spec.name!r}", allowed)
        try:
            data = entry.load(**spec.options)
        except TypeError as exc:
            raise SpecError("dataset.options", str(exc)) from None
    _DATA_CACHE[key] = data
    return data


def build_model(spec: ModelSpec, data: Dataset) -> nn.Module:
    """An untrained model skeleton for ``data`` (cheap: used to validate layer names)."""
    if spec.name == "custom" or spec.factory:
        if not spec.factory:
            raise SpecError("model.factory", "is required when model.name is 'custom'")
        model = _custom(spec.factory, "model")(**spec.options)
        if not isinstance(model, nn.Module):
            raise SpecError("model.factory", "must return a torch.nn.Module")
        return model
    entries = model_entries()
    entry = entries.get(spec.name)
    allowed = sorted(n for n, e in entries.items() if e.task == data.kind)
    if entry is None or entry.task != data.kind:
        raise SpecError(
            "model.name", f"unknown {data.kind} model {spec.name!r} for dataset {data.name!r}", allowed
        )
    arch = {k: v for k, v in spec.options.items() if k not in TRAIN_OPTIONS}
    try:
        return entry.build(data, **arch)
    except TypeError as exc:
        raise SpecError("model.options", str(exc)) from None


TRAIN_OPTIONS = frozenset({"epochs", "lr", "weight_decay", "batch_size", "train_seed"})
_MODEL_CACHE: dict[str, tuple[nn.Module, str]] = {}


def trained_model(spec: ModelSpec, data: Dataset, seed: int = 0) -> tuple[nn.Module, str]:
    """The trained model and its digest: loaded from the cache, or trained once and cached.

    Custom models load ``spec.weights`` (a ``state_dict``) instead of training.
    The returned model is in eval mode; callers must not keep changes to it.
    """
    from faultlab.workers.zoo.training import train_model

    # The recipe's defaults are part of the key: changing a zoo model's default epochs must
    # not keep serving weights trained with the old ones.
    entry = None if (spec.name == "custom" or spec.factory) else model_entries().get(spec.name)
    recipe_defaults = entry.recipe if entry else {}
    key = digest({"model": spec.model_dump(mode="json"), "data": data.digest, "seed": seed,
                  "recipe": recipe_defaults})
    with _LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
    if spec.transforms:
        # Transforms start from the very weights of the untransformed model (trained and cached
        # once): a compressed twin is exactly the dense model, compressed — never a retrained copy.
        from faultlab.workers.transforms import apply_transforms

        base, _ = trained_model(spec.model_copy(update={"transforms": []}), data, seed)
        model = apply_transforms(copy.deepcopy(base), data, list(spec.transforms), seed=seed)
        model.eval()
        result = (model, model_digest(model))
        with _LOCK:
            _MODEL_CACHE[key] = result
        return result
    with torch.random.fork_rng(devices=[]):
        # Initial weights must not depend on what this process drew before: the cache key
        # promises the same weights for the same (model, options, dataset, seed) everywhere.
        torch.manual_seed(int(spec.options.get("train_seed", seed)))
        model = build_model(spec, data)
    if spec.name == "custom" or spec.factory:
        if spec.weights:
            path = Path(spec.weights)
            if not path.is_file():
                raise SpecError("model.weights", f"file {spec.weights!r} does not exist")
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        path = faultlab_home() / "zoo" / f"{spec.name}-{key[:16]}.pt"
        if path.is_file():
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            entry = model_entries()[spec.name]
            recipe = {**entry.recipe, **{k: v for k, v in spec.options.items() if k in TRAIN_OPTIONS}}
            train_model(model, data, seed=int(recipe.pop("train_seed", seed)), **recipe)
            path.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(buf.getvalue())
            os.replace(tmp, path)  # atomic: concurrent workers never read half a file
    model.eval()
    result = (model, model_digest(model))
    with _LOCK:
        _MODEL_CACHE[key] = result
    return result
