"""Result blobs (training checkpoints) and the shared result cache: a blob is stored as the
producing tenant's artifact and as the cache's copy; a tenant answered from the cache gets
the blobs its own recorded results name, and nothing else; no token may claim the cache's
owner name."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab.errors import ArgumentError
from faultlab.hashing import blob_digest
from faultlab.server.auth import Authenticator
from faultlab.server.checkpoints import (
    RESULT_CACHE_OWNER,
    share_result_blobs,
    store_result_blobs,
)
from faultlab.server.config import CoordinatorConfig
from faultlab.server.store import open_store


def test_cached_results_share_only_their_own_blobs(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'blobs.db'}")
    config = CoordinatorConfig()
    try:
        shared = store_result_blobs(store, config, "alice", "c1",
                                    {"status": "completed", "checkpoint": b"weights-1"})
        private = store_result_blobs(store, config, "alice", "c2", {"checkpoint": b"weights-2"})
        assert shared["checkpoint"] == blob_digest(b"weights-1")
        assert store.stat_artifact(RESULT_CACHE_OWNER, shared["checkpoint"]) is not None
        assert store.stat_artifact("bob", shared["checkpoint"]) is None

        # Bob's campaign is answered with the first result only (plus a digest-looking value
        # that is no result blob, which must not be copied from anywhere).
        stray = {"model_digest": "sha256:" + "0" * 64}
        assert share_result_blobs(store, config, "bob", "c3", [shared, stray]) == 1
        assert store.read_artifact("bob", shared["checkpoint"]) == b"weights-1"
        assert store.stat_artifact("bob", private["checkpoint"]) is None
        assert store.stat_artifact("bob", stray["model_digest"]) is None
        # Idempotent, and nothing to do for the tenant that produced the blob.
        assert share_result_blobs(store, config, "bob", "c3", [shared]) == 0
        assert share_result_blobs(store, config, "alice", "c4", [shared, private]) == 0
    finally:
        store.close()


def test_no_token_may_map_to_the_cache_owner() -> None:
    with pytest.raises(ArgumentError, match="reserved"):
        Authenticator({"tok": RESULT_CACHE_OWNER})
