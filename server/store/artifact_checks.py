"""Artifact checks every store makes: digest, size limit and quota before a byte is stored,
and the content checked against its declared digest and size while it is cut into chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from faultlab.errors import ArgumentError, ResourceExhaustedError
from faultlab.spec import is_digest

ARTIFACT_CHUNK = 1 << 20
"""Bytes per stored chunk of an artifact (and the most one upload message carries)."""


def check_artifact_limits(
    digest: str, declared_size: int, *, max_bytes: int, used_bytes: int, quota_bytes: int
) -> None:
    """Refuses a malformed digest or size, an artifact over ``max_bytes`` and a tenant whose
    artifacts would exceed ``quota_bytes`` (checked before any byte is stored)."""
    if not is_digest(digest):
        raise ArgumentError("sha256", "must be 'sha256:' followed by 64 lowercase hex digits")
    if declared_size < 0:
        raise ArgumentError("size", f"must be >= 0, got {declared_size}")
    if declared_size > max_bytes:
        raise ResourceExhaustedError(
            f"artifact of {declared_size} bytes exceeds max_artifact_bytes ({max_bytes})"
        )
    if used_bytes + declared_size > quota_bytes:
        raise quota_exceeded(declared_size, used_bytes, quota_bytes)


def quota_exceeded(size: int, used_bytes: int, quota_bytes: int) -> ResourceExhaustedError:
    """The error of a tenant whose artifacts would exceed ``quota_bytes``."""
    return ResourceExhaustedError(
        f"artifact of {size} bytes exceeds tenant_quota_bytes ({quota_bytes}): "
        f"{used_bytes} bytes already stored"
    )


def verified_chunks(digest: str, chunks: Iterable[bytes], declared_size: int) -> Iterator[bytes]:
    """``chunks`` re-cut into pieces of :data:`ARTIFACT_CHUNK` bytes; raises ArgumentError
    once the content is longer than declared, or at the end when its size or sha256 differs."""
    h = hashlib.sha256()
    size = 0
    pending = bytearray()
    for chunk in chunks:
        size += len(chunk)
        if size > declared_size:
            raise ArgumentError("size", f"content exceeds the declared {declared_size} bytes")
        h.update(chunk)
        pending += chunk
        while len(pending) >= ARTIFACT_CHUNK:
            yield bytes(pending[:ARTIFACT_CHUNK])
            del pending[:ARTIFACT_CHUNK]
    if size != declared_size:
        raise ArgumentError("size", f"received {size} bytes, declared {declared_size}")
    actual = "sha256:" + h.hexdigest()
    if actual != digest:
        raise ArgumentError("sha256", f"content hashes to {actual[:19]}..., not the declared "
                            f"{digest[:19]}...")
    if pending:
        yield bytes(pending)
