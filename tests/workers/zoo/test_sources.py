"""Model and dataset sources that run no user code: ``pyg:``, ``torchvision:``, ``exported``,
``tensors``, and weights from safetensors or a weights-only state dict."""

from __future__ import annotations

import copy
import importlib
import io
import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save as save_safetensors
from torch import nn
from torch_geometric.data import Data

from faultlab.client._artifacts import bytes_digest, export_module, tensors_to_safetensors
from faultlab.errors import SpecError
from faultlab.spec import DatasetSpec, ModelSpec
from faultlab.workers.zoo.cnn import ResNetSmall, SmallCNN
from faultlab.workers.zoo.registry import GraphData, ImageData
from faultlab.workers.zoo.sources import (
    artifact_bytes,
    build_model_from_source,
    load_dataset_from_source,
)
from faultlab.workers.zoo.sources.exported import _weights_only_loads, load_exported
from tests.marks import requires

GRAPH = Data(
    x=torch.randn(12, 5), edge_index=torch.randint(0, 12, (2, 40)),
    y=torch.arange(12) % 3, train_mask=torch.arange(12) < 8, test_mask=torch.arange(12) >= 8,
)


def graph_data() -> GraphData:
    return GraphData("toy", GRAPH, num_classes=3)


def model(name: str, file: bytes | None = None, **options: Any
          ) -> tuple[ModelSpec, dict[str, bytes]]:
    if file is None:
        return ModelSpec(name=name, weights="random", options=options), {}
    return ModelSpec(name=name, file=bytes_digest(file), options=options), {
        bytes_digest(file): file}


def test_pyg_gcn_weights_round_trip_through_safetensors() -> None:
    spec, _ = model("pyg:GCN", hidden_channels=16, num_layers=3)
    random_model, random_digest = build_model_from_source(spec, {}, data=graph_data(), seed=1)
    assert type(random_model).__name__ == "GCN" and not random_model.training
    convs = [m for name, m in random_model.named_modules() if name.startswith("convs.")]
    assert convs[0].in_channels == 5 and convs[-1].out_channels == 3
    again, again_digest = build_model_from_source(spec, {}, data=graph_data(), seed=1)
    assert again_digest == random_digest  # weights: random is seeded, and the seed is identity
    assert all(torch.equal(a, b) for a, b in zip(
        random_model.state_dict().values(), again.state_dict().values(), strict=True))

    blob = save_safetensors({k: v.contiguous() for k, v in random_model.state_dict().items()})
    spec, artifacts = model("pyg:GCN", blob, hidden_channels=16, num_layers=3)
    loaded, digest = build_model_from_source(spec, artifacts, data=graph_data(), seed=7)
    x, ei = GRAPH.x, GRAPH.edge_index
    assert torch.equal(loaded(x, ei), random_model(x, ei))
    assert digest != random_digest
    assert build_model_from_source(spec, artifacts, data=graph_data(), seed=8)[1] == digest


def test_weights_from_a_weights_only_state_dict() -> None:
    gin, _ = build_model_from_source(model("pyg:GIN", in_channels=5, out_channels=3)[0], {})
    buffer = io.BytesIO()
    torch.save(gin.state_dict(), buffer)
    spec, artifacts = model("pyg:GIN", buffer.getvalue(), in_channels=5, out_channels=3)
    loaded, _ = build_model_from_source(spec, artifacts)
    assert all(torch.equal(a, b) for a, b in zip(
        gin.state_dict().values(), loaded.state_dict().values(), strict=True))


class _Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_pickle_that_runs_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    torch.save({"convs.0.lin.weight": _Exploit()}, buffer)
    spec, artifacts = model("pyg:GCN", buffer.getvalue(), in_channels=5, out_channels=3)
    with pytest.raises(SpecError, match="weights_only=True") as info:
        build_model_from_source(spec, artifacts)
    assert info.value.field == "model.file"
    assert not (tmp_path / "pwned.txt").exists()


def test_weights_that_do_not_fit_name_the_keys() -> None:
    spec, _ = model("pyg:GCN", in_channels=5, out_channels=3)
    state = build_model_from_source(spec, {})[0].state_dict()
    state = {("renamed." + k if k.endswith("bias") else k): v.contiguous()
             for k, v in state.items()}
    spec, artifacts = model("pyg:GCN", save_safetensors(state), in_channels=5, out_channels=3)
    with pytest.raises(SpecError, match=r"missing convs\.0\.bias.*unexpected renamed\.") as info:
        build_model_from_source(spec, artifacts)
    assert info.value.field == "model.file"

    wide = build_model_from_source(model("pyg:GCN", in_channels=6, out_channels=3)[0], {})[0]
    blob = save_safetensors({k: v.contiguous() for k, v in wide.state_dict().items()})
    spec, artifacts = model("pyg:GCN", blob, in_channels=5, out_channels=3)
    with pytest.raises(SpecError, match="size mismatch"):
        build_model_from_source(spec, artifacts)


def test_options_are_bounded_before_any_allocation() -> None:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        build_model_from_source(model("pyg:GCN", hidden_channels=5_000_000)[0], {},
                                data=graph_data())
    assert info.value.field == "model.options.hidden_channels"
    with pytest.raises(SpecError, match="parameters") as info:  # each option fine, product not
        build_model_from_source(
            model("pyg:GAT", hidden_channels=4096, num_layers=64, heads=64)[0], {},
            data=graph_data())
    assert time.perf_counter() - start < 5
    with pytest.raises(SpecError, match="not an option of GCN"):
        build_model_from_source(model("pyg:GCN", heads=2)[0], {}, data=graph_data())
    with pytest.raises(SpecError, match="unknown PyG model") as info:
        build_model_from_source(model("pyg:Transformer")[0], {}, data=graph_data())
    assert "pyg:GraphSAGE" in str(info.value.allowed)


def test_artifacts_are_checked_against_their_digest() -> None:
    blob = b"weights"
    with pytest.raises(SpecError, match="does not match"):
        artifact_bytes({bytes_digest(blob): b"tampered"}, bytes_digest(blob), "model.file")
    with pytest.raises(SpecError, match="not provided"):
        artifact_bytes({}, bytes_digest(blob), "model.file")


def test_tensors_dataset_of_images() -> None:
    images = (torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2]),
              torch.randn(4, 1, 8, 8), torch.tensor([2, 1, 0, 1]))
    blob = tensors_to_safetensors(images)
    spec = DatasetSpec(name="tensors", file=bytes_digest(blob), label="mine")
    data, digest = load_dataset_from_source(spec, {bytes_digest(blob): blob})
    assert isinstance(data, ImageData) and data.name == "mine" and data.num_classes == 3
    assert data.input_shape == (1, 8, 8) and torch.equal(data.x_test, images[2])
    assert "sha256:" + digest == bytes_digest(blob)


def test_tensors_dataset_of_a_graph() -> None:
    blob = tensors_to_safetensors(GRAPH)
    spec = DatasetSpec(name="tensors", file=bytes_digest(blob))
    data, _ = load_dataset_from_source(spec, {bytes_digest(blob): blob})
    assert isinstance(data, GraphData) and data.num_classes == 3 and data.num_features == 5
    assert torch.equal(data.split("test"), torch.arange(8, 12))


@pytest.mark.parametrize(("parts", "problem"), [
    ({"x": torch.randn(3, 2)}, "has keys x"),
    ({**GRAPH.to_dict(), "edge_index": torch.tensor([[0, 1], [1, 99]])}, "below 12"),
    ({**GRAPH.to_dict(), "train_mask": torch.ones(12)}, "train_mask must be a boolean"),
])
def test_tensors_dataset_is_checked(parts: dict[str, torch.Tensor], problem: str) -> None:
    blob = save_safetensors({k: v.contiguous() for k, v in parts.items()})
    spec = DatasetSpec(name="tensors", file=bytes_digest(blob))
    with pytest.raises(SpecError, match=problem) as info:
        load_dataset_from_source(spec, {bytes_digest(blob): blob})
    assert info.value.field == "dataset.file"


@pytest.mark.parametrize(("eager", "shape"), [
    (SmallCNN(1, 10), (4, 1, 8, 8)), (ResNetSmall(3, 10, blocks=2), (4, 3, 16, 16))],
    ids=["digits_cnn", "resnet_small"])
def test_exported_program_keeps_names_and_outputs(eager: nn.Module, shape: tuple[int, ...]
                                                  ) -> None:
    eager.eval()
    torch.manual_seed(0)
    blob = export_module(eager, torch.randn(*shape))
    spec = ModelSpec(name="exported", file=bytes_digest(blob))
    program, digest = build_model_from_source(spec, {bytes_digest(blob): blob})
    assert "sha256:" + digest == bytes_digest(blob)
    assert [n for n, _ in program.named_parameters()] == [n for n, _ in eager.named_parameters()]
    assert {n for n, _ in program.named_modules()} == {n for n, _ in eager.named_modules()}
    x = torch.randn(7, *shape[1:])  # another batch size: the batch dimension is dynamic
    assert torch.equal(program(x), eager(x))
    twin = copy.deepcopy(program).to(torch.float64)  # engines copy models (dtype twins)
    assert torch.allclose(twin(x.double()).float(), eager(x), atol=1e-5)
    shipped = pickle.loads(pickle.dumps(program))  # Ray ships campaign contexts pickled
    assert torch.equal(shipped(x), eager(x)) and not shipped.training

    # Fault sites behave as on the eager model: hooks on named modules fire, and an in-place
    # change to a named parameter changes the output.
    seen: list[str] = []
    last_conv = [n for n, m in eager.named_modules() if isinstance(m, nn.Conv2d)][-1]
    dict(program.named_modules())[last_conv].register_forward_hook(
        lambda *_: seen.append(last_conv))
    weight = dict(program.named_parameters())[f"{last_conv}.weight"]
    with torch.no_grad():
        weight.view(-1)[0] += 1e3
        dict(eager.named_parameters())[f"{last_conv}.weight"].view(-1)[0] += 1e3
    assert torch.equal(program(x), eager(x)) and seen == [last_conv]


def test_a_file_that_is_no_exported_program_is_refused() -> None:
    with pytest.raises(SpecError, match="not a torch.export program"):
        load_exported(b"not a zip", "model.file")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(1)}, buffer)  # a zip archive, but no program
    with pytest.raises(SpecError, match="not a loadable torch.export program"):
        load_exported(buffer.getvalue(), "model.file")
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ


def test_program_loading_forces_weights_only_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``torch.export.load`` falls back to ``torch.load(weights_only=False)`` for some entries;
    inside a program load even that call refuses a pickle that would run code."""
    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    torch.save(_Exploit(), buffer)
    with _weights_only_loads(), pytest.raises(pickle.UnpicklingError):
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert not (tmp_path / "pwned.txt").exists()


def _torchvision_error() -> str | None:
    try:
        importlib.import_module("torchvision.models")
    except Exception as exc:
        return f"torchvision does not import here ({type(exc).__name__}: {str(exc)[:80]})"
    return None


@requires(_torchvision_error() is None, reason=str(_torchvision_error()))
def test_torchvision_architecture_by_name() -> None:
    data = ImageData("toy", torch.randn(4, 3, 32, 32), torch.arange(4), torch.randn(2, 3, 32, 32),
                     torch.arange(2), num_classes=4)
    spec = ModelSpec(name="torchvision:resnet18", weights="random")
    net, _ = build_model_from_source(spec, {}, data=data)
    assert net(data.x_test).shape == (2, 4)
    blob = save_safetensors({k: v.contiguous() for k, v in net.state_dict().items()})
    spec = ModelSpec(name="torchvision:resnet18", file=bytes_digest(blob))
    loaded, _ = build_model_from_source(spec, {bytes_digest(blob): blob}, data=data)
    assert torch.equal(loaded(data.x_test), net(data.x_test))
    with pytest.raises(SpecError, match="unknown torchvision model"):
        build_model_from_source(ModelSpec(name="torchvision:nope", weights="random"), {})


@requires(_torchvision_error() is not None, reason="torchvision imports here")
def test_torchvision_missing_names_the_extra() -> None:
    with pytest.raises(SpecError, match=r"faultlab\[torchvision\]") as info:
        build_model_from_source(ModelSpec(name="torchvision:resnet18", weights="random"), {})
    assert info.value.field == "model.name"
