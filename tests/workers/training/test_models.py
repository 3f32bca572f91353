"""Training-campaign models: a linearized GNN is linear, SGC's S^K X equals the dense
product, every skip option keeps the shapes, and training is deterministic in the seed."""

from __future__ import annotations

import pytest
import torch

from faultlab.spec import DatasetSpec
from faultlab.workers.training.loop import label_split, train_cell
from faultlab.workers.training.models import SGC, GNNVariant, build_variant, sgc_features
from faultlab.workers.training.params import TrainingParams
from faultlab.workers.zoo import GraphData, load_dataset

SKIPS = ["none", "residual", "initial_residual", "jk"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def karate() -> GraphData:
    data = load_dataset(DatasetSpec.model_validate({"name": "karate"}), task="graph")
    assert isinstance(data, GraphData)
    return data


def _variant(family: str, skip: str, linear: bool, depth: int = 3) -> GNNVariant:
    torch.manual_seed(0)
    return GNNVariant(34, 4, family=family, depth=depth, width=16, skip=skip, linear=linear,
                      norm="none", bias=False).double()


@pytest.mark.parametrize("family", ["gcn", "gin"])
@pytest.mark.parametrize("skip", SKIPS)
def test_linearized_gnn_is_linear(karate: GraphData, family: str, skip: str) -> None:
    """f(a·x1 + b·x2) = a·f(x1) + b·f(x2) for the linearized model, and not for its ReLU twin."""
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(34, 34, generator=gen, dtype=torch.float64)
    x2 = torch.randn(34, 34, generator=gen, dtype=torch.float64)
    a, b = 1.7, -0.6
    ei = karate.data.edge_index
    linear = _variant(family, skip, linear=True)
    combined = linear(a * x1 + b * x2, ei)
    assert torch.allclose(combined, a * linear(x1, ei) + b * linear(x2, ei), atol=1e-9)
    relu = _variant(family, skip, linear=False)
    assert not torch.allclose(relu(a * x1 + b * x2, ei), a * relu(x1, ei) + b * relu(x2, ei),
                              atol=1e-6)


def _dense_s(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[0], edge_index[1]] = 1.0
    a_hat = a + torch.eye(n, dtype=torch.float64)
    d = a_hat.sum(1).pow(-0.5)
    return d[:, None] * a_hat * d[None, :]


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_sgc_precomputation_equals_dense_power(karate: GraphData, hops: int) -> None:
    x, ei = karate.data.x.double(), karate.data.edge_index
    expected = torch.linalg.matrix_power(_dense_s(ei, x.size(0)), hops) @ x
    assert torch.allclose(sgc_features(x, ei, hops), expected, atol=1e-12)


def test_sgc_model_is_a_linear_classifier_on_the_precomputed_features(
    karate: GraphData,
) -> None:
    model = build_variant({"family": "sgc", "depth": 2, "bias": False}, 34, 4)
    assert isinstance(model, SGC)
    x, ei = karate.data.x, karate.data.edge_index
    (features,) = model.precompute(x, ei)
    assert torch.allclose(model(x, ei), features @ model.lin.weight.T, atol=1e-6)
    assert sum(p.numel() for p in model.parameters()) == 34 * 4


@pytest.mark.parametrize("skip", SKIPS)
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_skip_variants_keep_shapes(karate: GraphData, skip: str, norm: str) -> None:
    model = GNNVariant(34, 4, family="gcn", depth=4, width=8, skip=skip, linear=False,
                       norm=norm, bias=True)
    out = model(karate.data.x, karate.data.edge_index)
    assert out.shape == (34, 4)
    assert model.lin_out.in_features == (32 if skip == "jk" else 8)
    assert [name for name, _ in model.named_children()] == [
        "lin_in", "act_in", "convs", "norms", "acts", "lin_out"]


def test_variant_grid_dedupes_sgc_cells() -> None:
    params = TrainingParams.model_validate({"variants": [
        {"family": ["gcn", "sgc"], "depth": [2], "skip": ["none", "residual"],
         "linear": [True, False]}]})
    names = [v["name"] for v in params.all_variants()]
    assert names == ["gcn-d2-w32-none-linear", "gcn-d2-w32-none-relu",
                     "gcn-d2-w32-residual-linear", "gcn-d2-w32-residual-relu", "sgc-k2"]


def test_label_split_rules(karate: GraphData) -> None:
    y = karate.data.y
    split = label_split(karate, {"per_class": 2}, seed=3)
    assert torch.bincount(y[split.labelled]).tolist() == [2, 2, 2, 2]
    assert set(split.labelled.tolist()).isdisjoint(split.val.tolist())
    assert set(split.labelled.tolist()) | set(split.val.tolist()) == set(
        karate.split("train").tolist())
    uniform = label_split(karate, {"fraction": 0.5, "balanced": False}, seed=3)
    assert len(uniform.labelled) == round(0.5 * len(karate.split("train")))
    everything = label_split(karate, {}, seed=3)
    assert torch.equal(everything.labelled, karate.split("train"))
    assert len(everything.val) == 0


def test_training_is_deterministic_in_the_seed(karate: GraphData) -> None:
    variant = TrainingParams.model_validate({}).all_variants()[0]
    recipe = {"optimizer": "adam", "lr": 0.01, "momentum": 0.0, "schedule": "cosine",
              "epochs": 15, "loss_target": None, "weight_decay": 0.0, "labels": {}}
    targets = {"loss": None, "loss_ratio": 0.5, "accuracy": 0.9, "accuracy_split": "train"}
    first = train_cell(karate, variant, recipe, targets, seed=4, curve_points=5)
    again = train_cell(karate, variant, recipe, targets, seed=4, curve_points=5)
    assert first["curve"]["loss"] == again["curve"]["loss"]
    assert first["curve"]["step"] == [0, 3, 6, 9, 12, 15]
    assert first["final_loss"] < first["initial_loss"]
    other = train_cell(karate, variant, recipe, targets, seed=5, curve_points=5)
    assert other["curve"]["loss"] != first["curve"]["loss"]
