"""The operational pool: inputs the model meets in operation, which differ from its test set.

Built from a zoo image dataset in three steps, all deterministic in the campaign seed:

1. **Base inputs** — the test split (``pool.include_test``; capped by ``dataset.size``) plus a
   *held-out slice* of the training split (``pool.holdout_fraction``, optionally only of
   ``pool.holdout_classes``): those inputs are withheld from training, so the slice is
   under-represented in what the model learnt.
2. **Shift components** — each entry of ``pool.shifts`` adds (a ``fraction`` of) the base
   inputs under one input shift (noise, blur, translation, rotation, contrast, occlusion,
   salt-and-pepper, or ``clean``).
3. **Class-prior shift** — ``pool.class_prior`` subsamples every class to the target
   proportions (the largest pool that realises them exactly); ``pool.size`` caps the result.

:func:`plan_pool` decides which base input enters under which shift without touching pixels
(the coordinator uses it to check budgets against the pool size); :func:`build_pool` renders
the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from faultlab.errors import SpecError
from faultlab.spec import DatasetSpec
from faultlab.workers.sampling.params import PoolSpec
from faultlab.workers.sampling.shifts import apply_shift
from faultlab.workers.zoo import ImageData


@dataclass(frozen=True)
class PoolPlan:
    """Where every pool input comes from (indices only)."""

    base_split: np.ndarray
    """Per base input: 0 = test split, 1 = held-out training input."""
    base_row: np.ndarray
    """Per base input: its row in that split."""
    component: np.ndarray
    """Per pool input: index of its shift in ``pool.shifts``."""
    base_of: np.ndarray
    """Per pool input: index of its base input."""
    train_rows: np.ndarray
    """Rows of the training split the model is trained on (all but the held-out slice)."""

    @property
    def size(self) -> int:
        return int(len(self.component))


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0x5A3, stream])


def plan_pool(pool: PoolSpec, dataset: DatasetSpec, data: ImageData, seed: int) -> PoolPlan:
    """Which base inputs, under which shifts, form the pool (no pixels are computed)."""
    y_train = data.y_train.numpy()
    n_train = len(y_train)
    if pool.holdout_classes is not None:
        bad = [c for c in pool.holdout_classes if not 0 <= c < data.num_classes]
        if bad:
            raise SpecError("sampling.pool.holdout_classes", f"class {bad[0]} does not exist",
                            f"0..{data.num_classes - 1}")
        candidates = np.flatnonzero(np.isin(y_train, pool.holdout_classes))
    else:
        candidates = np.arange(n_train)
    held = np.sort(_rng(seed, 1).choice(
        candidates, size=int(round(pool.holdout_fraction * len(candidates))), replace=False))
    train_rows = np.setdiff1d(np.arange(n_train), held)
    if len(train_rows) == 0:
        raise SpecError("sampling.pool.holdout_fraction", "leaves no training data")
    test_rows = np.arange(len(data.y_test)) if pool.include_test else np.empty(0, np.int64)
    if pool.include_test and dataset.size is not None:
        test_rows = test_rows[: dataset.size]
    base_split = np.concatenate([np.zeros(len(test_rows), np.int64), np.ones(len(held), np.int64)])
    base_row = np.concatenate([test_rows, held]).astype(np.int64)
    components, base_of = [], []
    for j, shift in enumerate(pool.shifts):
        count = max(1, int(round(shift.fraction * len(base_row))))
        chosen = np.sort(_rng(seed, 100 + j).choice(len(base_row), size=count, replace=False))
        components.append(np.full(count, j, np.int64))
        base_of.append(chosen)
    component = np.concatenate(components)
    base = np.concatenate(base_of)
    keep = np.arange(len(component))
    if pool.class_prior is not None:
        if len(pool.class_prior) != data.num_classes:
            raise SpecError("sampling.pool.class_prior",
                            f"has {len(pool.class_prior)} weights for {data.num_classes} classes")
        labels = base_labels(data, base_split, base_row)[base]
        weights = np.asarray(pool.class_prior, dtype=np.float64)
        weights = weights / weights.sum()
        counts = np.bincount(labels, minlength=data.num_classes)
        positive = weights > 0
        total = float(np.min(counts[positive] / weights[positive]))
        rng = _rng(seed, 2)
        keep_parts = []
        for c in np.flatnonzero(positive):
            members = np.flatnonzero(labels == c)
            take = min(len(members), int(np.floor(total * weights[c])))
            keep_parts.append(rng.choice(members, size=take, replace=False))
        keep = np.sort(np.concatenate(keep_parts)) if keep_parts else np.empty(0, np.int64)
    if pool.size is not None and pool.size < len(keep):
        keep = np.sort(_rng(seed, 3).choice(keep, size=pool.size, replace=False))
    if len(keep) == 0:
        raise SpecError("sampling.pool", "the operational pool is empty")
    return PoolPlan(base_split, base_row, component[keep], base[keep], train_rows)


def improvement_split(plan: PoolPlan, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(improvement ids, evaluation ids) of the DAIC cycle, split by *base input*: a
    ``fraction`` of the base inputs present in the pool (at least one) goes to evaluation with
    every shifted copy of it, so the model is never fine-tuned on one corrupted copy of an
    image and evaluated on its siblings."""
    bases = np.unique(plan.base_of)
    order = np.random.default_rng([seed, 0xDA1C]).permutation(len(bases))
    count = max(1, int(round(fraction * len(bases))))
    held = np.isin(plan.base_of, bases[order[:count]])
    return np.flatnonzero(~held), np.flatnonzero(held)


def base_labels(data: ImageData, base_split: np.ndarray, base_row: np.ndarray) -> np.ndarray:
    """True labels of the base inputs."""
    y_test, y_train = data.y_test.numpy(), data.y_train.numpy()
    return np.where(base_split == 0, y_test[np.where(base_split == 0, base_row, 0)],
                    y_train[np.where(base_split == 1, base_row, 0)])


def training_data(data: ImageData, plan: PoolPlan) -> ImageData:
    """The dataset the assessed model is trained on: the training split minus the held-out
    slice (the dataset itself when nothing is held out, so the zoo's cached model is reused)."""
    if len(plan.train_rows) == len(data.y_train):
        return data
    rows = torch.from_numpy(plan.train_rows)
    return ImageData(data.name, data.x_train[rows], data.y_train[rows], data.x_test, data.y_test,
                     data.num_classes)


def build_pool(pool: PoolSpec, plan: PoolPlan, data: ImageData,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool's inputs and true labels, in plan order."""
    # Base inputs are test rows first, then held-out rows (the order plan_pool builds).
    x_base = torch.cat([data.x_test[torch.from_numpy(plan.base_row[plan.base_split == 0])],
                        data.x_train[torch.from_numpy(plan.base_row[plan.base_split == 1])]])
    y_base = torch.from_numpy(base_labels(data, plan.base_split, plan.base_row))
    x = torch.empty((plan.size, *x_base.shape[1:]), dtype=x_base.dtype)
    for j, shift in enumerate(pool.shifts):
        where = np.flatnonzero(plan.component == j)
        if len(where) == 0:
            continue
        gen = torch.Generator().manual_seed(int(_rng(seed, 200 + j).integers(2**62)))
        rows = torch.from_numpy(plan.base_of[where])
        x[torch.from_numpy(where)] = apply_shift(shift.name, x_base[rows], shift.severity, gen)
    return x, y_base[torch.from_numpy(plan.base_of)]
