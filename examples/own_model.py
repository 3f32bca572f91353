"""Your own CNN and data through faultlab: train, export, upload, inject faults.

Trains a small CNN on scikit-learn's 8×8 handwritten digits (bundled with scikit-learn: nothing
is downloaded), then submits a weight bit-flip campaign on it. The SDK exports the module with
``torch.export`` and packs the tensors into a safetensors ``tensors`` dataset, uploads both, and
sends the coordinator a spec naming them by ``sha256:`` digest: no Python code of this file runs
on the coordinator or its workers. See docs/own-models.md.

    python examples/own_model.py                      # embedded coordinator (Client())
    python examples/own_model.py --address host:50051 --token TOKEN --trials 400
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

from faultlab import Client


class TinyCNN(nn.Module):
    """Two convolutions and two linear layers: the qualified names (``conv1``, ``fc2``) are the
    fault sites a campaign names."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: float N×1×8×8 in [0, 1] and int64 labels."""
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, test = order[:1300], order[1300:]
    return x[train], y[train], x[test], y[test]


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 30) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="coordinator host:port (default: embedded)")
    parser.add_argument("--token", help="bearer token of a coordinator with authentication")
    parser.add_argument("--trials", type=int, default=200, help="fault trials")
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = digits()
    model = train(TinyCNN(), x_train, y_train)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(f"trained TinyCNN: test accuracy {accuracy:.3f}")

    spec = {
        "kind": "faults",
        "name": "own-cnn",
        "model": {"label": "tiny-cnn"},
        "dataset": {"label": "sklearn-digits", "size": 200},
        "faults": {
            "fault_model": "bitflip",
            "target": "weight",
            "layers": ["conv1", "conv2", "fc1", "fc2"],
            "bits": [20, 23, 27, 30, 31],
            "sampling": "uniform",
            "trials": args.trials,
        },
    }
    with Client(args.address, token=args.token, timeout=120) as client:
        job = client.submit(spec, model=model, example_inputs=x_test[:2],
                            dataset=(x_train, y_train, x_test, y_test))
        print(f"campaign {job.id}")
        job.wait(progress=False)
        report = job.report()
        print(report.table().to_string())
        print("model digest:", report.provenance.get("model_digest"))


if __name__ == "__main__":
    main()
