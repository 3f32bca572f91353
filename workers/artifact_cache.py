"""One content-addressed on-disk cache for everything a worker computes once and reuses.

An :class:`ArtifactCache` is a namespace (a folder) under ``$FAULTLAB_HOME``
(:func:`faultlab.paths.faultlab_home`); a key names one file in it, e.g. ``zoo/<model>-<hash>.pt``,
``sampling/oracle-<name>-<hash>.npz``, ``watermark/embedding/<hash>.pt``. Callers derive keys
from the sha256 of everything that determines the artifact, so a hit is always right and a
stale entry is never read — there is no invalidation.

Writes are atomic: the bytes go to a temporary file in the same folder, then ``os.replace``
puts them in place, so concurrent Ray workers (threads or processes) never read half a file;
two writers of one key both write the same content, and the last rename wins. An optional
JSON sidecar (``<file>.json``) carries metadata; it is written before the artifact, so an
artifact that exists has its metadata. :meth:`ArtifactCache.lock` is an inter-process lock
per key for artifacts expensive enough to compute once per machine, and the optional audit
log (one JSON line per computation) makes reuse checkable.

:meth:`ArtifactCache.load_or_compute` is the whole memory → disk → compute lookup for
``torch.save``-able values; it says where the value came from (:data:`Source`). torch is
imported lazily: the cache itself needs only the standard library.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

from faultlab.paths import faultlab_home

#: Where a looked-up artifact came from: this process, this machine's disk, or just computed.
Source = Literal["memory", "disk", "computed"]

#: The content of :meth:`ArtifactCache.put`: bytes, or a function that writes to a binary file.
Content = bytes | Callable[[IO[bytes]], object]


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts) or "\\" in key:
        raise ValueError(f"invalid artifact key {key!r}: '/'-separated names, no '.' or '..'")


def _atomic_write(path: Path, content: Content) -> None:
    """Writes ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, bytes):
                handle.write(content)
            else:
                content(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactCache:
    """Content-addressed files under ``$FAULTLAB_HOME/<namespace>``.

    Args:
        namespace: the folder under ``$FAULTLAB_HOME`` (``"zoo"``, ``"sampling"``, ...).
        memory_limit: how many values :meth:`load_or_compute` keeps in this process
            (least recently used dropped first); 0 keeps none.
        audit_log: file name, in the namespace folder, of the append-only JSON-lines log that
            :meth:`load_or_compute` writes one line to per computation; ``None`` for no log.

    ``$FAULTLAB_HOME`` is resolved on every call, so one instance follows the variable.
    """

    def __init__(self, namespace: str, *, memory_limit: int = 0,
                 audit_log: str | None = None) -> None:
        _check_key(namespace)
        self.namespace = namespace
        self.memory_limit = memory_limit
        self.audit_log = audit_log
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._memory_lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The namespace folder (not created until something is written)."""
        return faultlab_home() / self.namespace

    def path(self, key: str, suffix: str = ".pt") -> Path:
        """Where the artifact ``key`` lives (whether or not it exists)."""
        _check_key(key)
        return self.root / f"{key}{suffix}"

    def get(self, key: str, suffix: str = ".pt") -> Path | None:
        """The file of ``key`` if it has been stored, else ``None``."""
        path = self.path(key, suffix)
        return path if path.is_file() else None

    def put(self, key: str, content: Content, suffix: str = ".pt",
            meta: dict[str, Any] | None = None) -> Path:
        """Stores ``content`` under ``key`` atomically (with a JSON sidecar ``meta``)."""
        path = self.path(key, suffix)
        if meta is not None:
            sidecar = json.dumps(meta, sort_keys=True, default=str).encode()
            _atomic_write(path.with_name(path.name + ".json"), sidecar)
        _atomic_write(path, content)
        return path

    def meta(self, key: str, suffix: str = ".pt") -> dict[str, Any] | None:
        """The sidecar metadata stored with ``key``, or ``None``."""
        path = self.path(key, suffix)
        sidecar = path.with_name(path.name + ".json")
        if not sidecar.is_file():
            return None
        value: dict[str, Any] = json.loads(sidecar.read_text())
        return value

    @contextmanager
    def lock(self, key: str, suffix: str = ".pt") -> Iterator[None]:
        """An exclusive inter-process lock on ``key`` (a no-op where ``fcntl`` is missing)."""
        path = self.path(key, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        with open(path.with_name(path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def log_path(self) -> Path | None:
        """The audit log, or ``None`` when this cache keeps none."""
        return None if self.audit_log is None else self.root / self.audit_log

    def audit(self, entry: dict[str, Any]) -> None:
        """Appends ``entry`` as one JSON line to the audit log (one ``write`` of one line, so
        concurrent appenders do not interleave)."""
        if self.log_path is None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write(json.dumps(entry, sort_keys=True, default=str) + "\n")

    def load_torch(self, key: str, suffix: str = ".pt") -> Any | None:
        """The ``torch.load`` of ``key`` (on CPU, weights only), or ``None`` if not stored."""
        path = self.get(key, suffix)
        if path is None:
            return None
        import torch

        return torch.load(path, map_location="cpu", weights_only=True)

    def save_torch(self, key: str, value: Any, suffix: str = ".pt",
                   meta: dict[str, Any] | None = None) -> Path:
        """``torch.save`` of ``value`` under ``key``, atomically."""
        import torch

        buffer = io.BytesIO()
        torch.save(value, buffer)
        return self.put(key, buffer.getvalue(), suffix, meta)

    def load_or_compute(self, key: str, compute: Callable[[], Any],
                        audit: dict[str, Any] | None = None) -> tuple[Any, Source]:
        """The value of ``key``, from memory, disk or ``compute()``, and where it came from.

        A computation holds :meth:`lock`, so concurrent workers on one machine compute it
        once; it is saved with :meth:`save_torch` and logged with ``audit`` (plus key, pid,
        time and compute seconds).
        """
        path = str(self.path(key))
        with self._memory_lock:
            if path in self._memory:
                self._memory.move_to_end(path)
                return self._memory[path], "memory"
        source: Source = "disk"
        with self.lock(key):
            value = self.load_torch(key)
            if value is None:
                started = time.perf_counter()
                value = compute()
                self.save_torch(key, value)
                source = "computed"
                self.audit({"key": key, "pid": os.getpid(), "time": time.time(),
                            "compute_seconds": time.perf_counter() - started, **(audit or {})})
        self._remember(path, value)
        return value, source

    def _remember(self, path: str, value: Any) -> None:
        if self.memory_limit <= 0:
            return
        with self._memory_lock:
            self._memory[path] = value
            self._memory.move_to_end(path)
            while len(self._memory) > self.memory_limit:
                self._memory.popitem(last=False)

    def forget_memory(self) -> None:
        """Drops the in-process copies (tests use it to exercise the disk path)."""
        with self._memory_lock:
            self._memory.clear()
