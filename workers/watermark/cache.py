"""Content-addressed artifacts of the watermark engine: computed once, reused by every trial.

A watermarked model (with its key) is identified by the sha256 of everything that determines
it — base-model and dataset digests, scheme and parameters, embedding settings, trigger count,
seed, engine version — and stored under ``$FAULTLAB_HOME/watermark/<kind>/``, like the zoo's
trained models. Lookups go memory → disk → compute; a computation holds an exclusive file lock
so concurrent workers on one machine compute it once, and appends a line to
``$FAULTLAB_HOME/watermark/embed-log.jsonl`` so reuse is auditable. Every lookup says where
the artifact came from (``memory``, ``disk`` or ``computed``); trials record it.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch

from faultlab.workers.zoo import faultlab_home

Source = Literal["memory", "disk", "computed"]
_MEMORY: OrderedDict[str, dict[str, Any]] = OrderedDict()
_MEMORY_LIMIT = 64
_LOCK = threading.Lock()


def artifact_path(kind: str, key: str) -> Path:
    return faultlab_home() / "watermark" / kind / f"{key[:40]}.pt"


def log_path() -> Path:
    return faultlab_home() / "watermark" / "embed-log.jsonl"


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An inter-process lock next to ``path`` (a no-op where ``fcntl`` is missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remember(key: str, value: dict[str, Any]) -> None:
    with _LOCK:
        _MEMORY[key] = value
        _MEMORY.move_to_end(key)
        while len(_MEMORY) > _MEMORY_LIMIT:
            _MEMORY.popitem(last=False)


def _read(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return value


def load_or_compute(
    kind: str, key: str, compute: Callable[[], dict[str, Any]], describe: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Source]:
    """The artifact ``key`` of ``kind`` (a ``torch.save``-able dict) and where it came from."""
    with _LOCK:
        if key in _MEMORY:
            _MEMORY.move_to_end(key)
            return _MEMORY[key], "memory"
    path = artifact_path(kind, key)
    source: Source = "disk"
    with _exclusive(path):
        if path.is_file():
            value = _read(path)
        else:
            started = time.perf_counter()
            value = compute()
            buf = io.BytesIO()
            torch.save(value, buf)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(buf.getvalue())
            os.replace(tmp, path)  # atomic: readers never see half a file
            source = "computed"
            line = {
                "kind": kind, "key": key, "pid": os.getpid(), "time": time.time(),
                "compute_seconds": time.perf_counter() - started, **(describe or {}),
            }
            with open(log_path(), "a") as log:
                log.write(json.dumps(line, sort_keys=True) + "\n")
    _remember(key, value)
    return value, source


def forget_memory() -> None:
    """Drops the in-process copies (tests use it to exercise the disk path)."""
    with _LOCK:
        _MEMORY.clear()
