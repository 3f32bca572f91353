"""The GNN half of the zoo: graph datasets, GNN models, their training recipes and the cache."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch_geometric.utils import is_undirected

from faultlab.errors import SpecError
from faultlab.spec import DatasetSpec, ModelSpec
from faultlab.workers.zoo import (
    GraphData,
    build_model,
    dataset_entries,
    evaluate,
    load_dataset,
    model_entries,
    predict_logits,
    registry,
    trained_model,
)

GRAPH_MODELS = ["gcn", "sgc", "gat", "gin", "sage", "deep_gcn"]
# Test accuracy of each model trained by its default recipe (seed 0). Measured values are in
# docs/zoo.md; the bounds leave room for numerical drift across torch/PyG versions.
SBM_BOUND = 0.9
KARATE_BOUND = 0.7


def model_spec(name: str, /, **options: object) -> ModelSpec:
    return ModelSpec.model_validate({"name": name, "options": options})


def dataset_spec(name: str, /, **options: object) -> DatasetSpec:
    return DatasetSpec.model_validate({"name": name, "options": options})


@pytest.fixture(scope="module", autouse=True)
def fresh_zoo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private FAULTLAB_HOME and an empty in-memory model cache, so the recipes really train
    (weights cached by an older version of the code elsewhere are never picked up)."""
    home = tmp_path_factory.mktemp("zoo-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAULTLAB_HOME", str(home))
        mp.setattr(registry, "_MODEL_CACHE", {})
        yield home


@pytest.fixture(scope="module")
def sbm() -> GraphData:
    data = load_dataset(dataset_spec("sbm"))
    assert isinstance(data, GraphData)
    return data


@pytest.fixture(scope="module")
def karate() -> GraphData:
    data = load_dataset(dataset_spec("karate"))
    assert isinstance(data, GraphData)
    return data


@pytest.mark.parametrize("name", ["karate", "sbm", "fake"])
def test_dataset_is_deterministic_and_well_formed(name: str) -> None:
    load = dataset_entries()[name].load
    first, second = load(), load()
    assert isinstance(first, GraphData) and isinstance(second, GraphData)
    assert first.kind == "graph" and first.digest == second.digest
    d = first.data
    n = d.num_nodes
    assert d.x.shape[0] == n and d.x.dtype == torch.float32
    assert d.y.shape == (n,) and int(d.y.max()) + 1 == first.num_classes
    assert is_undirected(d.edge_index, num_nodes=n)
    assert not (d.train_mask & d.test_mask).any() and (d.train_mask | d.test_mask).all()
    # Stratified: every class is present in both splits.
    for mask in (d.train_mask, d.test_mask):
        assert set(d.y[mask].tolist()) == set(range(first.num_classes))


def test_generated_graphs_follow_their_options() -> None:
    sbm = dataset_entries()["sbm"].load
    small = sbm(num_nodes=90, blocks=3, feature_dim=5, seed=1)
    assert small.data.x.shape == (90, 5) and small.num_classes == 3
    assert torch.bincount(small.data.y).tolist() == [30, 30, 30]
    assert sbm(seed=1).digest != sbm(seed=2).digest
    dense = sbm(num_nodes=60, blocks=2, p_in=1.0, p_out=0.0)
    y, (src, dst) = dense.data.y, dense.data.edge_index
    assert (y[src] == y[dst]).all() and dense.data.edge_index.shape[1] == 2 * 2 * (30 * 29 // 2)
    fake = dataset_entries()["fake"].load
    assert fake(seed=3).digest == fake(seed=3).digest != fake(seed=4).digest


def test_loading_a_generated_graph_leaves_global_random_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    dataset_entries()["fake"].load(seed=7)
    dataset_entries()["sbm"].load(seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_bad_dataset_options_name_the_field() -> None:
    with pytest.raises(SpecError) as err:
        load_dataset(dataset_spec("sbm", blocks=1))
    assert err.value.field == "dataset.options.blocks"
    with pytest.raises(SpecError) as err:
        load_dataset(dataset_spec("karate", test_fraction=1.5))
    assert err.value.field == "dataset.options.test_fraction"
    with pytest.raises(SpecError) as err:
        load_dataset(dataset_spec("sbm", colour="red"))
    assert err.value.field == "dataset.options.colour"  # the unknown option, by name
    assert "unknown parameter" in err.value.problem


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_model_trains_on_sbm(name: str, sbm: GraphData) -> None:
    model, digest = trained_model(model_spec(name), sbm)
    assert not model.training and len(digest) == 64
    logits = predict_logits(model, sbm)
    assert logits.shape == (int(sbm.data.test_mask.sum()), sbm.num_classes)
    assert evaluate(model, sbm) >= SBM_BOUND


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_model_trains_on_karate(name: str, karate: GraphData) -> None:
    model, _ = trained_model(model_spec(name), karate)
    assert evaluate(model, karate) >= KARATE_BOUND


def test_second_call_loads_from_disk_cache(
    sbm: GraphData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTLAB_HOME", str(tmp_path))
    monkeypatch.setattr(registry, "_MODEL_CACHE", {})
    spec = model_spec("gcn", hidden=24)
    _, trained_digest = trained_model(spec, sbm)
    assert len(list((tmp_path / "zoo").glob("gcn-*.pt"))) == 1

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached weights should have been loaded, not retrained")

    monkeypatch.setattr(registry, "_MODEL_CACHE", {})
    monkeypatch.setattr("faultlab.workers.zoo.training.train_model", no_training)
    start = time.perf_counter()
    _, cached_digest = trained_model(spec, sbm)
    assert time.perf_counter() - start < 2.0
    assert cached_digest == trained_digest


def test_training_does_not_depend_on_earlier_random_draws(
    sbm: GraphData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = model_spec("sage", hidden=8, epochs=20)
    digests = []
    for run in range(2):
        monkeypatch.setenv("FAULTLAB_HOME", str(tmp_path / f"home{run}"))
        monkeypatch.setattr(registry, "_MODEL_CACHE", {})
        torch.rand(100 + run)  # a process that drew different numbers before
        digests.append(trained_model(spec, sbm)[1])
    assert digests[0] == digests[1]


@pytest.mark.parametrize("skip", [True, False])
def test_deep_gcn_builds_with_and_without_skip(skip: bool, sbm: GraphData) -> None:
    model = build_model(model_spec("deep_gcn", depth=8, skip=skip), sbm)
    names = dict(model.named_modules())
    assert {"lin_in", "convs.0", "convs.7", "acts.7", "lin_out"} <= names.keys()
    assert "convs.8" not in names
    out = model(sbm.data.x, sbm.data.edge_index)
    assert out.shape == (sbm.data.num_nodes, sbm.num_classes)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"depth": 1}, "model.options.depth"), ({"depth": 33}, "model.options.depth"),
     ({"skip": "yes"}, "model.options.skip"), ({"dropout": 1.0}, "model.options.dropout")],
)
def test_deep_gcn_rejects_bad_options(
    options: dict[str, object], field: str, sbm: GraphData
) -> None:
    with pytest.raises(SpecError) as err:
        build_model(model_spec("deep_gcn", **options), sbm)
    assert err.value.field == field


def test_layers_and_activations_have_stable_names(sbm: GraphData) -> None:
    expected = {
        "gcn": {"conv1", "act1", "conv2"},
        "sgc": {"conv1"},
        "gat": {"conv1", "act1", "conv2"},
        "gin": {"conv1", "conv1.nn.0", "act1", "conv2", "act2", "lin"},
        "sage": {"conv1", "act1", "conv2"},
    }
    for name, modules in expected.items():
        model = build_model(model_spec(name), sbm)
        assert modules <= dict(model.named_modules()).keys(), name


def test_unknown_model_for_a_graph_dataset_lists_graph_models(sbm: GraphData) -> None:
    with pytest.raises(SpecError) as err:
        build_model(model_spec("digits_cnn"), sbm)
    assert err.value.field == "model.name"
    allowed = str(err.value.allowed).split(", ")
    assert set(GRAPH_MODELS) <= set(allowed)
    assert all(model_entries()[m].task == "graph" for m in allowed)


def test_missing_planetoid_root_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_dataset(dataset_spec("planetoid", name="Cora", root=str(tmp_path)))
    assert err.value.field == "dataset.options.root"
    assert "ind.cora.x" in err.value.problem
    assert not (tmp_path / "Cora" / "raw").exists()  # nothing was downloaded
    with pytest.raises(SpecError) as err:
        load_dataset(dataset_spec("planetoid", name="Reddit", root=str(tmp_path)))
    assert err.value.field == "dataset.options.name"


def test_planetoid_reads_a_local_copy(tmp_path: Path) -> None:
    """A tiny stand-in in Planetoid's raw format (pickled sparse features, one-hot labels, an
    adjacency dict, test ids) exercises the loader without the real data."""
    import pickle

    import numpy as np
    import scipy.sparse as sp

    raw = tmp_path / "Cora" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labelled, known, test, classes = 6, 510, 10, 3  # PyG takes 500 validation nodes after y

    def one_hot(k: int) -> np.ndarray:
        return np.eye(classes)[np.arange(k) % classes]

    def words(k: int) -> sp.csr_matrix:  # binary bag-of-words rows, none empty
        return sp.csr_matrix(np.maximum(np.eye(4)[np.arange(k) % 4], rng.random((k, 4)) < 0.3))

    parts: dict[str, object] = {
        "x": words(labelled), "y": one_hot(labelled),
        "allx": words(known), "ally": one_hot(known),
        "tx": words(test), "ty": one_hot(test),
        "graph": {i: [(i + 1) % (known + test)] for i in range(known + test)},
    }
    for part, value in parts.items():
        with open(raw / f"ind.cora.{part}", "wb") as f:
            pickle.dump(value, f)
    (raw / "ind.cora.test.index").write_text("".join(f"{known + i}\n" for i in range(test)))
    data = load_dataset(dataset_spec("planetoid", name="cora", root=str(tmp_path)))
    assert isinstance(data, GraphData) and data.name == "cora" and data.num_classes == 3
    assert len(data.split("train")) == labelled and len(data.split("test")) == test
    assert torch.allclose(data.data.x.sum(1), torch.ones(known + test))  # row-normalised
    assert is_undirected(data.data.edge_index)


def _write_csv_gz(path: Path, rows: list[list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.writelines(",".join(str(v) for v in row) + "\n" for row in rows)


def test_ogbn_arxiv_reads_the_ogb_layout_and_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_dataset(dataset_spec("ogbn_arxiv", root=str(tmp_path)))
    assert err.value.field == "dataset.options.root"
    # A five-paper stand-in in OGB's unzipped layout exercises the parser.
    folder = tmp_path / "ogbn_arxiv"
    _write_csv_gz(folder / "raw" / "node-feat.csv.gz", [[i, i + 0.5] for i in range(5)])
    _write_csv_gz(folder / "raw" / "node-label.csv.gz", [[0], [1], [2], [1], [0]])
    _write_csv_gz(folder / "raw" / "edge.csv.gz", [[1, 0], [2, 0], [3, 1], [4, 2]])
    _write_csv_gz(folder / "split" / "time" / "train.csv.gz", [[0], [1], [2]])
    _write_csv_gz(folder / "split" / "time" / "valid.csv.gz", [[3]])
    _write_csv_gz(folder / "split" / "time" / "test.csv.gz", [[4]])
    data = load_dataset(dataset_spec("ogbn_arxiv", root=str(tmp_path)))
    assert isinstance(data, GraphData) and data.num_classes == 3 and data.num_features == 2
    assert data.split("train").tolist() == [0, 1, 2] and data.split("test").tolist() == [4]
    assert data.data.val_mask.nonzero().flatten().tolist() == [3]
    assert data.data.edge_index.shape[1] == 8 and is_undirected(data.data.edge_index)
