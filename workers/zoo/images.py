"""Image datasets: scikit-learn's digits (ships with the package) and CIFAR-10 for clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faultlab.errors import SpecError
from faultlab.paths import data_dir
from faultlab.workers.zoo.registry import ImageData, register_dataset


@register_dataset("digits", task="image")
def load_digits(test_fraction: float = 0.3, split_seed: int = 0) -> ImageData:
    """scikit-learn's 1,797 real 8×8 handwritten digits (1×8×8, scaled to [0, 1]), a fixed
    stratified train/test split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=split_seed, stratify=y
    )
    return ImageData(
        "digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr),
        torch.from_numpy(x_te), torch.from_numpy(y_te), num_classes=10,
    )


@register_dataset("cifar10", task="image")
def load_cifar10(root: str | None = None) -> ImageData:
    """CIFAR-10 from a local copy (torchvision layout, ``cifar-10-batches-py``) under ``root``
    (default ``$FAULTLAB_HOME/data/cifar10``); never downloads."""
    import pickle

    base = (Path(root).expanduser() if root else data_dir("cifar10")) / "cifar-10-batches-py"
    if not base.is_dir():
        raise SpecError(
            "dataset.options.root",
            f"CIFAR-10 not found at {str(base)!r}; copy it there (no downloads)"
        )

    def read(names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for name in names:
            with open(base / name, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch["labels"], dtype=np.int64))
        mean = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)[None, :, None, None]
        std = np.array([0.247, 0.243, 0.261], dtype=np.float32)[None, :, None, None]
        x = (np.concatenate(xs).astype(np.float32) / 255.0 - mean) / std
        return torch.from_numpy(x), torch.from_numpy(np.concatenate(ys))

    x_tr, y_tr = read([f"data_batch_{i}" for i in range(1, 6)])
    x_te, y_te = read(["test_batch"])
    return ImageData("cifar10", x_tr, y_tr, x_te, y_te, num_classes=10)
