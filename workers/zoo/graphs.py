"""Graph datasets for node classification: KarateClub (ships with PyG), generated
stochastic-block-model graphs (``sbm``; ``sbm_large``: 100k nodes, ≈ 1.2M edges) and fake
graphs, and Planetoid / ogbn-arxiv loaders for clusters.

Every loader returns a :class:`~faultlab.workers.zoo.registry.GraphData` whose PyG ``Data``
holds ``x``, ``edge_index`` (undirected, coalesced), ``y``, ``train_mask`` and ``test_mask``.
Generated graphs and the splits are deterministic in their options (``seed`` /
``split_seed``) and never touch the global random state. The cluster loaders read a local
``root`` and raise :class:`~faultlab.errors.SpecError` naming ``dataset.options.root`` when
the files are absent: nothing is ever downloaded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from faultlab.errors import SpecError
from faultlab.paths import data_dir
from faultlab.workers.zoo.registry import GraphData, register_dataset

PLANETOID_NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
_PLANETOID_RAW = ["x", "tx", "allx", "y", "ty", "ally", "graph", "test.index"]
_OGB_ARXIV_FILES = [
    "raw/edge.csv.gz",
    "raw/node-feat.csv.gz",
    "raw/node-label.csv.gz",
    "split/time/train.csv.gz",
    "split/time/valid.csv.gz",
    "split/time/test.csv.gz",
]
# Node pairs drawn per chunk when generating an SBM (bounds the dense draw at 64 MiB).
_SBM_CHUNK_ELEMENTS = 1 << 24


def _check_fraction(value: float, field: str) -> None:
    if not 0.0 < value < 1.0:
        raise SpecError(field, f"must lie strictly between 0 and 1, got {value!r}")


def stratified_masks(
    y: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean train/test node masks: a seeded split stratified by label, so every class
    appears in both splits in proportion."""
    from sklearn.model_selection import train_test_split

    _check_fraction(test_fraction, "dataset.options.test_fraction")
    try:
        train_ids, test_ids = train_test_split(
            np.arange(len(y)), test_size=test_fraction, random_state=seed, stratify=y.numpy()
        )
    except ValueError as exc:  # a split too small to hold every class
        raise SpecError("dataset.options.test_fraction", str(exc)) from None
    train_mask = torch.zeros(len(y), dtype=torch.bool)
    test_mask = torch.zeros(len(y), dtype=torch.bool)
    train_mask[torch.from_numpy(np.sort(train_ids))] = True
    test_mask[torch.from_numpy(np.sort(test_ids))] = True
    return train_mask, test_mask


def _graph(
    name: str,
    x: torch.Tensor,
    edge_index: torch.Tensor,
    y: torch.Tensor,
    train_mask: torch.Tensor,
    test_mask: torch.Tensor,
    num_classes: int,
) -> GraphData:
    from torch_geometric.data import Data

    data = Data(
        x=x.float().contiguous(),
        edge_index=edge_index.long().contiguous(),
        y=y.long().contiguous(),
        train_mask=train_mask,
        test_mask=test_mask,
    )
    return GraphData(name, data, num_classes=num_classes)


@contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seeds torch's and Python's global generators for code that only uses them (PyG's
    generators), and restores both afterwards so callers' random streams are untouched."""
    state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            yield
    finally:
        random.setstate(state)


@register_dataset("karate", task="graph")
def load_karate(test_fraction: float = 0.5, split_seed: int = 0) -> GraphData:
    """Zachary's karate club (34 nodes, 78 edges, 4 communities, one-hot node features) from
    PyG's ``KarateClub``. Its built-in train mask labels one node per class, too few to
    measure anything, so faultlab uses a seeded stratified split (half the nodes for test
    by default)."""
    from torch_geometric.datasets import KarateClub

    club = KarateClub()[0]
    train_mask, test_mask = stratified_masks(club.y, test_fraction, split_seed)
    return _graph(
        "karate", club.x, club.edge_index, club.y, train_mask, test_mask, int(club.y.max()) + 1
    )


def sbm_edge_index(
    block_of: torch.Tensor, p_in: float, p_out: float, gen: torch.Generator
) -> torch.Tensor:
    """Undirected edges of a stochastic block model: each node pair ``i < j`` is joined with
    probability ``p_in`` inside a block and ``p_out`` across blocks (no self-loops)."""
    from torch_geometric.utils import to_undirected

    n = len(block_of)
    rows_per_chunk = max(1, _SBM_CHUNK_ELEMENTS // max(n, 1))
    cols = torch.arange(n)
    sources, targets = [], []
    for start in range(0, n, rows_per_chunk):
        rows = torch.arange(start, min(n, start + rows_per_chunk))
        same = block_of[rows, None] == block_of[None, :]
        prob = torch.where(same, p_in, p_out)
        hit = (torch.rand(prob.shape, generator=gen) < prob) & (cols[None, :] > rows[:, None])
        r, c = hit.nonzero(as_tuple=True)
        sources.append(rows[r])
        targets.append(c)
    edge_index = torch.stack([torch.cat(sources), torch.cat(targets)])
    return to_undirected(edge_index, num_nodes=n)


@register_dataset("sbm", task="graph")
def load_sbm(
    num_nodes: int = 600,
    blocks: int = 4,
    p_in: float = 0.05,
    p_out: float = 0.01,
    feature_dim: int = 16,
    noise: float = 2.0,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> GraphData:
    """Generated stochastic-block-model graph (Holland et al., 1983): the class of a node is
    its block (equal block sizes, node ids shuffled); edges join nodes of one block with
    probability ``p_in`` and of different blocks with ``p_out``. Features are a random class
    mean plus isotropic Gaussian ``noise``, so both the features and the graph are
    informative and a GNN beats a feature-only classifier. Deterministic in the options."""
    checks = {
        "num_nodes": num_nodes >= 2 * blocks,
        "blocks": blocks >= 2,
        "p_in": 0.0 <= p_in <= 1.0,
        "p_out": 0.0 <= p_out <= 1.0,
        "feature_dim": feature_dim >= 1,
        "noise": noise >= 0.0,
    }
    for option, ok in checks.items():
        if not ok:
            raise SpecError(
                f"dataset.options.{option}",
                "out of range (num_nodes >= 2 * blocks, blocks >= 2, probabilities in [0, 1], "
                "feature_dim >= 1, noise >= 0)",
            )
    gen = torch.Generator().manual_seed(seed)
    block_of = torch.arange(num_nodes) % blocks
    block_of = block_of[torch.randperm(num_nodes, generator=gen)]
    edge_index = sbm_edge_index(block_of, p_in, p_out, gen)
    means = torch.randn(blocks, feature_dim, generator=gen)
    x = means[block_of] + noise * torch.randn(num_nodes, feature_dim, generator=gen)
    train_mask, test_mask = stratified_masks(block_of, test_fraction, seed)
    return _graph("sbm", x, edge_index, block_of, train_mask, test_mask, blocks)


@register_dataset("sbm_large", task="graph")
def load_sbm_large(
    num_nodes: int = 100_000,
    blocks: int = 8,
    degree_in: int = 4,
    degree_out: int = 2,
    feature_dim: int = 16,
    noise: float = 2.0,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> GraphData:
    """A large planted-partition graph (the sparse regime of the stochastic block model,
    Holland et al., 1983) for full-size GNN campaigns: every node draws ``degree_in`` partners
    uniformly inside its block and ``degree_out`` uniformly among all nodes, edges are made
    undirected and coalesced (self-loops dropped), so the expected degree is about
    ``2 · (degree_in + degree_out)``: the defaults give 100k nodes and ≈ 1.2M directed edges,
    in O(nodes · degree) time and memory (never a dense draw). Classes, features and the
    split follow :func:`load_sbm`; node ids are shuffled. Deterministic in the options."""
    from torch_geometric.utils import remove_self_loops, to_undirected

    checks = {"num_nodes": num_nodes >= 2 * blocks, "blocks": blocks >= 2,
              "degree_in": degree_in >= 0, "degree_out": degree_out >= 0,
              "feature_dim": feature_dim >= 1, "noise": noise >= 0.0}
    for option, ok in checks.items():
        if not ok:
            raise SpecError(f"dataset.options.{option}",
                            "out of range (num_nodes >= 2 * blocks, blocks >= 2, degrees >= 0, "
                            "feature_dim >= 1, noise >= 0)")
    gen = torch.Generator().manual_seed(seed)
    per_block = num_nodes // blocks
    n = per_block * blocks
    block0 = torch.arange(n) % blocks  # before shuffling, block b holds b, b + blocks, …
    src = torch.arange(n).repeat_interleave(degree_in + degree_out)
    inside = block0.repeat_interleave(degree_in).view(n, degree_in) + blocks * torch.randint(
        0, per_block, (n, degree_in), generator=gen)
    across = torch.randint(0, n, (n, degree_out), generator=gen)
    dst = torch.cat([inside, across], dim=1).reshape(-1)
    perm = torch.randperm(n, generator=gen)
    edge_index, _ = remove_self_loops(torch.stack([perm[src], perm[dst]]))
    edge_index = to_undirected(edge_index, num_nodes=n)
    block_of = torch.empty(n, dtype=torch.long)
    block_of[perm] = block0
    means = torch.randn(blocks, feature_dim, generator=gen)
    x = means[block_of] + noise * torch.randn(n, feature_dim, generator=gen)
    train_mask, test_mask = stratified_masks(block_of, test_fraction, seed)
    return _graph("sbm_large", x, edge_index, block_of, train_mask, test_mask, blocks)


@register_dataset("fake", task="graph")
def load_fake(
    avg_num_nodes: int = 500,
    avg_degree: float = 8.0,
    num_features: int = 16,
    num_classes: int = 4,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> GraphData:
    """One random graph from PyG's ``FakeDataset`` (node-level task): uniformly random edges
    (no homophily), random labels and features shifted by the label. Useful for plumbing and
    scale tests; the node count varies within ±25 % of ``avg_num_nodes`` with the seed."""
    from torch_geometric.datasets import FakeDataset

    if avg_num_nodes < 4 or num_features < 1 or num_classes < 2 or avg_degree <= 0:
        raise SpecError(
            "dataset.options",
            "out of range (avg_num_nodes >= 4, avg_degree > 0, num_features >= 1, "
            "num_classes >= 2)",
        )
    with _seeded_global_rng(seed):
        fake = FakeDataset(
            num_graphs=1, avg_num_nodes=avg_num_nodes, avg_degree=avg_degree,
            num_channels=num_features, num_classes=num_classes, task="node",
        )[0]
    train_mask, test_mask = stratified_masks(fake.y, test_fraction, seed)
    return _graph("fake", fake.x, fake.edge_index, fake.y, train_mask, test_mask, num_classes)


def _data_root(root: str | None, default: str) -> Path:
    return Path(root).expanduser() if root else data_dir(default)


@register_dataset("planetoid", task="graph")
def load_planetoid(
    name: str = "Cora", root: str | None = None, normalize_features: bool = True
) -> GraphData:
    """Planetoid citation graphs Cora / CiteSeer / PubMed (Yang et al., ICML 2016) with the
    public split (20 labelled nodes per class, 1,000 test nodes), read from a local copy in
    PyG's layout ``<root>/<Name>/raw/ind.<name>.*`` (default root
    ``$FAULTLAB_HOME/data/planetoid``). Never downloads. Features are row-normalised by
    default, as in Kipf & Welling (2017)."""
    canonical = PLANETOID_NAMES.get(str(name).lower())
    if canonical is None:
        raise SpecError(
            "dataset.options.name", f"unknown Planetoid graph {name!r}", PLANETOID_NAMES.values()
        )
    base = _data_root(root, "planetoid")
    raw_dir = base / canonical / "raw"
    missing = [f"ind.{canonical.lower()}.{part}" for part in _PLANETOID_RAW]
    missing = [f for f in missing if not (raw_dir / f).is_file()]
    if missing:
        # PyG's Planetoid downloads whatever raw file is absent: refuse before constructing it.
        raise SpecError(
            "dataset.options.root",
            f"Planetoid {canonical} not found at {str(raw_dir)!r} (missing {', '.join(missing)}); "
            "copy the raw files there, faultlab never downloads",
        )
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures
    from torch_geometric.utils import to_undirected

    try:
        graph = Planetoid(
            str(base), canonical, transform=NormalizeFeatures() if normalize_features else None
        )[0]
    except OSError as exc:
        raise SpecError(
            "dataset.options.root",
            f"cannot process Planetoid {canonical} under {str(base)!r} (PyG writes processed/ "
            f"beside raw/): {exc}",
        ) from None
    num_classes = int(graph.y.max()) + 1
    # The published adjacency lists are symmetric; enforce it for hand-made copies too.
    edge_index = to_undirected(graph.edge_index, num_nodes=graph.num_nodes)
    result = _graph(
        canonical.lower(), graph.x, edge_index, graph.y, graph.train_mask, graph.test_mask,
        num_classes,
    )
    result.data.val_mask = graph.val_mask
    return result


@register_dataset("ogbn_arxiv", task="graph")
def load_ogbn_arxiv(root: str | None = None, undirected: bool = True) -> GraphData:
    """ogbn-arxiv (Hu et al., NeurIPS 2020): 169,343 arXiv CS papers, 128-d word-embedding
    features, 40 subject classes, the official time split (train up to 2017, test 2019;
    validation kept as ``val_mask``). Read from the unzipped OGB layout
    ``<root>/ogbn_arxiv/{raw,split/time}/*.csv.gz`` (default root ``$FAULTLAB_HOME/data/ogb``;
    ``root`` may also be the ``ogbn_arxiv`` folder itself) without the ``ogb`` package.
    Never downloads. The citation edges are made undirected by default, as is customary."""
    import pandas as pd
    from torch_geometric.utils import coalesce, to_undirected

    base = _data_root(root, "ogb")
    folder = base / "ogbn_arxiv" if (base / "ogbn_arxiv").is_dir() else base
    missing = [f for f in _OGB_ARXIV_FILES if not (folder / f).is_file()]
    if missing:
        raise SpecError(
            "dataset.options.root",
            f"ogbn-arxiv not found at {str(folder)!r} (missing {', '.join(missing)}); "
            "unzip OGB's arxiv.zip there, faultlab never downloads",
        )

    def read(rel: str, dtype: type) -> np.ndarray:
        return pd.read_csv(folder / rel, header=None, compression="gzip").to_numpy(
            dtype=dtype, copy=True
        )

    x = torch.from_numpy(read("raw/node-feat.csv.gz", np.float32))
    y = torch.from_numpy(read("raw/node-label.csv.gz", np.int64)).flatten()
    edge_index = torch.from_numpy(read("raw/edge.csv.gz", np.int64)).t()
    n = len(y)
    edge_index = (
        to_undirected(edge_index, num_nodes=n) if undirected else coalesce(edge_index, num_nodes=n)
    )
    masks = {}
    for split in ("train", "valid", "test"):
        mask = torch.zeros(n, dtype=torch.bool)
        mask[torch.from_numpy(read(f"split/time/{split}.csv.gz", np.int64)).flatten()] = True
        masks[split] = mask
    result = _graph(
        "ogbn_arxiv", x, edge_index, y, masks["train"], masks["test"], int(y.max()) + 1
    )
    result.data.val_mask = masks["valid"]
    return result
