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
    has_blobs,
    share_result_blobs,
    store_result_blobs,
    store_shard_blobs,
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


def test_a_shard_stores_its_blobs_in_one_call_and_a_retry_reuses_them(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'shard.db'}")
    config = CoordinatorConfig()
    try:
        results = [{"loss": 0.5}, {"loss": 0.4, "checkpoint": b"w-a"}, {"checkpoint": b"w-b"}]
        assert has_blobs(results) and not has_blobs([{"loss": 0.5}, {"ref": "sha256:00"}])
        first = store_shard_blobs(store, config, "alice", "c9", results)
        again = store_shard_blobs(store, config, "alice", "c9", results)  # after an outage
        assert first == again and first[0] == {"loss": 0.5}
        assert [r.get("checkpoint") for r in first] == [
            None, blob_digest(b"w-a"), blob_digest(b"w-b")]
        assert store.read_artifact("alice", blob_digest(b"w-b")) == b"w-b"
        assert results[1]["checkpoint"] == b"w-a"  # the worker's dicts are not rewritten
    finally:
        store.close()
