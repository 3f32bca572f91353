"""Content-addressed artifacts of the watermark engine: computed once, reused by every trial.

A watermarked model (with its key) is identified by the sha256 of everything that determines
it — base-model and dataset digests, scheme and parameters, embedding settings, trigger count,
seed, engine version — and stored under ``$FAULTLAB_HOME/watermark/<kind>/``, like the zoo's
trained models, in the shared :class:`~faultlab.workers.artifact_cache.ArtifactCache`.
Lookups go memory → disk → compute; a computation holds an exclusive file lock so concurrent
workers on one machine compute it once, and appends a line to
``$FAULTLAB_HOME/watermark/embed-log.jsonl`` so reuse is auditable. Every lookup says where
the artifact came from (``memory``, ``disk`` or ``computed``); trials record it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from faultlab.workers.artifact_cache import ArtifactCache, Source

_EMBED_LOG = "embed-log.jsonl"

#: The watermark namespace: ``<kind>/<key[:40]>.pt`` files and the embed log.
ARTIFACTS = ArtifactCache("watermark", memory_limit=64, audit_log=_EMBED_LOG)

#: Drops the in-process copies (tests use it to exercise the disk path).
forget_memory = ARTIFACTS.forget_memory


def log_path() -> Path:
    """``$FAULTLAB_HOME/watermark/embed-log.jsonl``: one line per computed artifact."""
    return ARTIFACTS.root / _EMBED_LOG


def load_or_compute(
    kind: str,
    key: str,
    compute: Callable[[], dict[str, Any]],
    describe: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Source]:
    """The artifact ``key`` of ``kind`` (a ``torch.save``-able dict) and where it came from."""
    value, source = ARTIFACTS.load_or_compute(
        f"{kind}/{key[:40]}", compute, {"kind": kind, "key": key, **(describe or {})}
    )
    result: dict[str, Any] = value
    return result, source
