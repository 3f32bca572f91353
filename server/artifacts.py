"""Uploads: a client-streamed artifact, checked and handed to the store.

:class:`ArtifactUploads` receives an upload's chunks on the event loop into a spooled
temporary file (memory up to :data:`SPOOL_MEMORY_BYTES`, then disk), refusing an artifact over
``max_artifact_bytes`` from its header, before any chunk arrives, and content longer than
declared as soon as it exceeds it. The store then verifies the sha256 and the tenant's quota
and stores the content in chunks, on a worker thread (see
:meth:`~faultlab.server.store.base.Store.put_artifact`).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable
from pathlib import PurePosixPath, PureWindowsPath

from faultlab.errors import ArgumentError, NotFoundError
from faultlab.server.config import CoordinatorConfig
from faultlab.server.store import Store
from faultlab.server.store.base import ARTIFACT_CHUNK, ArtifactInfo, check_artifact_limits

SPOOL_MEMORY_BYTES = 8 * ARTIFACT_CHUNK
MAX_NAME_CHARS = 200


def display_name(name: str) -> str:
    """The last component of a client's file name, cut short (it is never opened)."""
    return PurePosixPath(PureWindowsPath(name).name).name[:MAX_NAME_CHARS]


class ArtifactUploads:
    """Artifact uploads and look-ups of one coordinator, per tenant."""

    def __init__(self, store: Store, config: CoordinatorConfig) -> None:
        self.store = store
        self.config = config

    async def stat(self, owner: str, digest: str) -> ArtifactInfo:
        info = await asyncio.to_thread(self.store.stat_artifact, owner, digest)
        if info is None:
            raise NotFoundError("artifact", digest)
        return info

    async def upload(
        self, owner: str, digest: str, size: int, name: str, chunks: AsyncIterable[bytes]
    ) -> ArtifactInfo:
        existing = await asyncio.to_thread(self.store.stat_artifact, owner, digest)
        if existing is not None:
            return existing
        max_bytes, quota = self.config.max_artifact_bytes, self.config.tenant_quota_bytes
        check_artifact_limits(digest, size, max_bytes=max_bytes, used_bytes=0,
                              quota_bytes=quota)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
            received = 0
            async for chunk in chunks:
                if len(chunk) > ARTIFACT_CHUNK:
                    raise ArgumentError("chunk", f"{len(chunk)} bytes; at most "
                                        f"{ARTIFACT_CHUNK} bytes per message")
                received += len(chunk)
                if received > size:
                    raise ArgumentError("size", f"content exceeds the declared {size} bytes")
                spool.write(chunk)
            spool.seek(0)
            return await asyncio.to_thread(
                self.store.put_artifact, owner, digest,
                iter(lambda: spool.read(ARTIFACT_CHUNK), b""),
                declared_size=size, max_bytes=max_bytes, quota_bytes=quota,
                name=display_name(name),
            )
