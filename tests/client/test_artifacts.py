"""Client-side artifacts: digests, localized specs, exported programs and tensors files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv

from faultlab.client._artifacts import (
    attach_objects,
    bytes_digest,
    export_module,
    file_digest,
    localize_spec,
    tensors_to_safetensors,
)
from faultlab.errors import ArgumentError, SpecError
from faultlab.spec import parse_spec, require_uploaded
from faultlab.workers.zoo.cnn import SmallCNN
from faultlab.workers.zoo.registry import GraphData, ImageData
from faultlab.workers.zoo.sources import load_dataset_from_source


def test_file_digest_is_the_sha256_of_the_content(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x" * 3_000_000)
    expected = "sha256:" + hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert file_digest(path) == expected == bytes_digest(path.read_bytes())


def test_localize_spec_uploads_client_files_by_digest(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    weights = tmp_path / "models" / "cora_gcn.safetensors"
    weights.write_bytes(b"weights")
    data = tmp_path / "cora.safetensors"
    data.write_bytes(b"graph")
    already = "sha256:" + "cd" * 32
    spec: dict[str, Any] = {
        "kind": "faults",
        "model": {"name": "pyg:GCN", "file": "models/cora_gcn.safetensors"},
        "dataset": {"name": "tensors", "file": str(data), "label": "cora"},
        "faults": {"compare_models": [{"name": "exported", "file": already}]},
    }
    localized, uploads = localize_spec(spec, base_dir=tmp_path)
    assert spec["model"]["file"] == "models/cora_gcn.safetensors"  # the input is not changed
    assert localized["model"]["file"] == file_digest(weights)
    assert localized["model"]["label"] == "pyg:GCN[cora_gcn]"
    assert localized["dataset"] == {"name": "tensors", "file": file_digest(data), "label": "cora"}
    assert localized["faults"]["compare_models"][0]["file"] == already
    assert uploads == {file_digest(weights): weights, file_digest(data): data}
    require_uploaded(parse_spec(localized))  # what the coordinator accepts


def test_localize_spec_names_a_missing_file(tmp_path: Path) -> None:
    spec = {"kind": "faults", "model": {"name": "exported", "file": "nope.pt2"}}
    with pytest.raises(SpecError, match="does not exist") as info:
        localize_spec(spec, base_dir=tmp_path)
    assert info.value.field == "model.file"


def test_tensors_to_safetensors_round_trips_images_and_graphs() -> None:
    images = (torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 0, 1, 1]),
              torch.rand(3, 1, 4, 4), torch.tensor([1, 0, 1]))
    graph = Data(x=torch.rand(6, 3), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
                 y=torch.tensor([0, 1, 0, 1, 0, 1]), train_mask=torch.arange(6) < 3,
                 test_mask=torch.arange(6) >= 3, edge_weight=torch.rand(3))
    for dataset, kind in ((images, ImageData), (graph, GraphData)):
        spec, uploads = attach_objects({"kind": "faults", "dataset": {"split": "train"}},
                                       dataset=dataset)
        parsed = parse_spec(spec)
        assert parsed.dataset.name == "tensors" and parsed.dataset.split == "train"
        blobs = {k: v for k, v in uploads.items() if isinstance(v, bytes)}
        data, _ = load_dataset_from_source(parsed.dataset, blobs)
        assert isinstance(data, kind)
    loaded = load_dataset_from_source(parsed.dataset, blobs)[0]
    assert isinstance(loaded, GraphData) and torch.equal(loaded.data.edge_weight,
                                                         graph.edge_weight)
    with pytest.raises(ArgumentError, match="x_train, y_train"):
        tensors_to_safetensors((torch.ones(1),))


def test_attach_objects_exports_a_module() -> None:
    module = SmallCNN(1, 10)
    spec, uploads = attach_objects({"kind": "faults", "model": {"name": "digits_cnn",
                                                                "options": {"width": 8}}},
                                   model=module, example_inputs=torch.randn(2, 1, 8, 8))
    parsed = parse_spec(spec)
    assert parsed.model.name == "exported" and parsed.model.label == "SmallCNN"
    assert parsed.model.options == {} and parsed.model.file in uploads
    assert module.training  # the caller's module is left as it was
    with pytest.raises(ArgumentError, match="example_inputs"):
        attach_objects({"kind": "faults"}, model=module)


class _DataDependentGNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = GCNConv(3, 2)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: torch.export cannot trace it
            return self.conv(x, edge_index)
        return x[:, :2]


def test_export_failure_of_a_pyg_model_points_to_pyg_source() -> None:
    with pytest.raises(ArgumentError, match=r"pyg:<Class>") as info:
        export_module(_DataDependentGNN(), (torch.rand(4, 3), torch.tensor([[0, 1], [1, 2]])))
    assert info.value.argument == "model"
