"""Small, fast fault campaigns used by the service tests."""

from __future__ import annotations

from typing import Any


def fault_spec(trials: int = 48, *, seed: int = 3, size: int = 32, name: str = "spine-test",
               **faults: Any) -> dict[str, Any]:
    """A uniform weight bit-flip campaign on the digits CNN (seconds on 2 cores)."""
    section: dict[str, Any] = {
        "fault_model": "bitflip",
        "target": "weight",
        "layers": ["conv1", "conv2", "fc1", "fc2"],
        "bits": [1, 20, 23, 27, 30, 31],
        "sampling": "uniform",
        "trials": trials,
    }
    section.update(faults)
    return {
        "kind": "faults",
        "name": name,
        "seed": seed,
        "model": {"name": "digits_cnn"},
        "dataset": {"name": "digits", "split": "test", "size": size},
        "execution": {"shard_seconds": 0.5},
        "faults": section,
    }
