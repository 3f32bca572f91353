"""Canonical JSON and content addresses.

A trial's key is the sha256 of its canonical record together with the model and dataset
digests and the engine version, so the same trial on the same model is the same key on every
machine, and a changed engine never reuses stale results.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return value
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _normalise(value.item())
    return value


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, NaN/Inf as strings: equal data gives equal text."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256_hex(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def blob_digest(blob: bytes) -> str:
    """The artifact id of ``blob``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))


def trial_key(
    trial: dict[str, Any], *, kind: str, engine_version: str, model_digest: str, dataset_digest: str
) -> str:
    """Content address of one trial's result."""
    return digest(
        {
            "kind": kind,
            "engine_version": engine_version,
            "model": model_digest,
            "dataset": dataset_digest,
            "trial": trial,
        }
    )
