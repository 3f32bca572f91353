"""The validation split on which a sensitivity-derived allocation is *selected* (issue 12 item
14): never the test split on which the allocation is then *evaluated*.

Selecting per-layer levels on the test inputs and reporting the chosen allocation's test
accuracy is optimistic (the selection has seen the test noise). The sensitivity scan therefore
measures every single-layer drop on a validation split:

* images — a seeded, label-stratified subset of the training split
  (``sklearn.model_selection.train_test_split``), ``fraction`` of it;
* graphs — the dataset's own ``val_mask`` where it has one (Planetoid, ogbn-arxiv); else a
  seeded, label-stratified subset of the training nodes. The nodes stay in the one graph
  (transductive), only the nodes scored differ.

The dense model was trained on the whole training split, so its validation accuracy is a
training-set figure: it orders the layers' sensitivities, it is not an estimate of test
accuracy (that is what the evaluation on test reports). The split is recorded in the
campaign's provenance (source, fraction, seed, size, digest of the ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from faultlab.hashing import digest
from faultlab.workers.zoo import Dataset, GraphData

#: Seed-mixing salt of the selection split (so it differs from the calibration sample's).
_SALT = 0x5E1EC7


@dataclass
class SelectionSplit:
    """The inputs a sensitivity scan scores."""

    inputs: list[tuple[Any, ...]]
    """Positional arguments of each forward (images: chunks; graphs: the whole graph)."""
    ids: torch.Tensor | None
    """Graphs: the scored node ids; images: ``None`` (every input of ``inputs``)."""
    labels: torch.Tensor
    provenance: dict[str, Any]
    """Source, fraction, seed, size and the digest of the ids (training-split positions)."""


def _carve(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of a seeded subset of ``fraction`` of ``labels``, stratified by label
    where every class has two members (else a plain seeded subset)."""
    positions = np.arange(len(labels))
    size = max(1, round(fraction * len(labels)))
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 and size >= len(counts) else None
    _, chosen = train_test_split(positions, test_size=size, random_state=seed % 2**32,
                                 stratify=stratify)
    return np.sort(chosen)


def selection_split(data: Dataset, fraction: float, seed: int, chunk: int) -> SelectionSplit:
    """The validation split of ``data`` (see the module docstring)."""
    mixed = int(np.random.SeedSequence([seed, _SALT]).generate_state(1)[0])
    if isinstance(data, GraphData):
        graph = data.data
        own = getattr(graph, "val_mask", None)
        if own is not None and bool(own.any()):
            ids, source = own.nonzero().flatten(), "val_mask"
        else:
            train = data.split("train")
            picked = _carve(graph.y[train].numpy(), fraction, mixed)
            ids, source = train[torch.from_numpy(picked)], "train"
        record = {"source": source, "fraction": None if source == "val_mask" else fraction,
                  "seed": seed, "size": int(ids.numel()), "ids_digest": digest(ids.tolist())}
        return SelectionSplit([(graph.x, graph.edge_index)], ids, graph.y[ids], record)
    x, y = data.split("train")
    picked = _carve(y.numpy(), fraction, mixed)
    index = torch.from_numpy(picked)
    xs, ys = x[index], y[index]
    record = {"source": "train", "fraction": fraction, "seed": seed, "size": int(len(picked)),
              "ids_digest": digest(picked.tolist())}
    return SelectionSplit([(xs[i : i + chunk],) for i in range(0, len(xs), chunk)], None, ys,
                          record)
