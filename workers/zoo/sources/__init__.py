"""Models and datasets from uploaded artifacts and named architectures, running no user code.

Sources, by the spec's ``model.name`` / ``dataset.name``:

================================  =====================================================
``pyg:<Class>``                   PyG's basic GNNs from bounded options (:mod:`.pyg`)
``torchvision:<arch>``            torchvision architectures, optional extra
                                  (:mod:`.torchvision_source`)
``training:<family>``            a training campaign's GNN variant (:mod:`.training_variant`)
``exported``                      a ``torch.export`` program, unflattened (:mod:`.exported`)
``dataset: tensors``              images or a graph from safetensors (:mod:`.tensors`)
================================  =====================================================

Weights come from the spec's ``file`` (safetensors, or a state dict loaded with
``weights_only=True``: :mod:`.weights`), or are explicitly ``weights: random``. Every ``file``
is the ``sha256:`` digest of an artifact; its bytes arrive in ``artifacts`` and are checked
against that digest before use. The digest returned beside a model or dataset is its identity
for cache keys and provenance: derived from the artifact's content, never from a path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import nn

from faultlab.errors import SpecError
from faultlab.hashing import digest
from faultlab.spec import DatasetSpec, ModelSpec, dataset_label, model_source
from faultlab.workers.zoo.registry import Dataset, GraphData
from faultlab.workers.zoo.sources import pyg, torchvision_source, training_variant
from faultlab.workers.zoo.sources.exported import load_exported
from faultlab.workers.zoo.sources.tensors import load_tensors
from faultlab.workers.zoo.sources.weights import load_weights

__all__ = ["artifact_bytes", "build_model_from_source", "load_dataset_from_source"]


def artifact_bytes(artifacts: Mapping[str, bytes], ref: str, field: str) -> bytes:
    """The bytes of artifact ``ref`` (``sha256:<hex>``), checked against the digest."""
    blob = artifacts.get(ref)
    if blob is None:
        raise SpecError(field, f"artifact {ref[:23]}... was not provided (upload it first)")
    if "sha256:" + hashlib.sha256(blob).hexdigest() != ref:
        raise SpecError(field, f"artifact {ref[:23]}... does not match its digest")
    return blob


def _architecture(spec: ModelSpec, data: Dataset | None, field: str) -> nn.Module:
    source = model_source(spec.name)
    arch = spec.name.partition(":")[2]
    if source == "pyg":
        graph = data if isinstance(data, GraphData) else None
        return pyg.build(arch, spec.options, field=field,
                         in_channels=graph.num_features if graph else None,
                         out_channels=data.num_classes if data else None)
    if source == "torchvision":
        return torchvision_source.build(arch, spec.options, field=field,
                                        num_classes=data.num_classes if data else None)
    if source == "training":
        graph = data if isinstance(data, GraphData) else None
        return training_variant.build(arch, spec.options, field=field,
                                      in_channels=graph.num_features if graph else None,
                                      num_classes=graph.num_classes if graph else None,
                                      data=data)
    raise SpecError(f"{field}.name", f"{spec.name[:60]!r} is not an artifact source",
                    ["exported", "pyg:<Class>", "torchvision:<arch>", "training:<family>"])


def build_model_from_source(
    spec: ModelSpec, artifacts: Mapping[str, bytes], *, data: Dataset | None = None,
    seed: int = 0, field: str = "model",
) -> tuple[nn.Module, str]:
    """The model of an ``exported`` / ``pyg:`` / ``torchvision:`` spec (eval mode) and its
    digest: the artifact's content for a program, else architecture + options + weights
    file digest, or + ``seed`` for ``weights: random`` (initialised from that seed)."""
    blob = artifact_bytes(artifacts, spec.file, f"{field}.file") if spec.file else None
    if model_source(spec.name) == "exported":
        if blob is None:
            raise SpecError(f"{field}.file", "is required for name 'exported'")
        return load_exported(blob, f"{field}.file"), hashlib.sha256(blob).hexdigest()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _architecture(spec, data, field)
    if blob is not None:
        load_weights(model, blob, f"{field}.file")
    identity = digest({"name": spec.name, "options": spec.options, "file": spec.file,
                       "seed": None if blob is not None else seed})
    return model.eval(), identity


def load_dataset_from_source(
    spec: DatasetSpec, artifacts: Mapping[str, bytes], *, field: str = "dataset"
) -> tuple[Dataset, str]:
    """The dataset of a ``tensors`` spec and its digest (the artifact's content)."""
    if spec.name != "tensors" or spec.file is None:
        raise SpecError(f"{field}.name", f"{spec.name[:60]!r} is not an artifact source",
                        ["tensors"])
    blob = artifact_bytes(artifacts, spec.file, f"{field}.file")
    data = load_tensors(blob, dataset_label(spec), f"{field}.file")
    return data, hashlib.sha256(blob).hexdigest()
