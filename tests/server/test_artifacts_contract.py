"""The artifact half of the store contract, checked on SQLite and on a real Redis.

Every test taking ``store`` / ``open_backend`` runs once per backend (see ``conftest.py``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator

import pytest

from faultlab.errors import ArgumentError, NotFoundError, ResourceExhaustedError
from faultlab.server.store import Store
from faultlab.server.store.base import ARTIFACT_CHUNK

MiB = 1 << 20
LIMITS = {"max_bytes": 8 * MiB, "quota_bytes": 16 * MiB}


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def pieces(blob: bytes, size: int = 300_000) -> Iterator[bytes]:
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


def put(store: Store, owner: str, blob: bytes, **limits: int) -> object:
    return store.put_artifact(owner, digest(blob), pieces(blob), declared_size=len(blob),
                              **{**LIMITS, **limits}, name="weights.pt")


def test_put_stat_read_round_trip_byte_exact(store: Store) -> None:
    blob = os.urandom(2 * ARTIFACT_CHUNK + 12345)  # several stored chunks, a partial last one
    info = put(store, "alice", blob)
    stat = store.stat_artifact("alice", digest(blob))
    assert stat == info
    assert (stat.digest, stat.size, stat.owner, stat.name) == (
        digest(blob), len(blob), "alice", "weights.pt")
    assert stat.created > 0
    assert store.read_artifact("alice", digest(blob)) == blob


def test_empty_artifact(store: Store) -> None:
    put(store, "alice", b"")
    assert store.read_artifact("alice", digest(b"")) == b""


def test_survives_reopening(open_backend: Callable[[], Store]) -> None:
    blob = os.urandom(MiB + 1)
    put(open_backend(), "alice", blob)
    assert open_backend().read_artifact("alice", digest(blob)) == blob


def test_idempotent_put_reads_no_chunk(store: Store) -> None:
    blob = b"model bytes" * 1000
    first = put(store, "alice", blob)

    def never() -> Iterator[bytes]:
        raise AssertionError("chunks of an existing artifact were read")
        yield b""

    again = store.put_artifact("alice", digest(blob), never(), declared_size=len(blob),
                               **LIMITS)
    assert again == first


def test_other_tenants_artifact_is_absent(store: Store) -> None:
    blob = os.urandom(1000)
    put(store, "alice", blob)
    assert store.stat_artifact("bob", digest(blob)) is None
    with pytest.raises(NotFoundError) as err:
        store.read_artifact("bob", digest(blob))
    assert (err.value.what, err.value.id) == ("artifact", digest(blob))
    put(store, "bob", blob)  # the same content is bob's own record once he uploads it
    assert store.stat_artifact("bob", digest(blob)).owner == "bob"  # type: ignore[union-attr]
    assert store.read_artifact("bob", digest(blob)) == blob


def test_unknown_artifact_is_not_found(store: Store) -> None:
    assert store.stat_artifact("alice", digest(b"nothing")) is None
    with pytest.raises(NotFoundError):
        store.read_artifact("alice", digest(b"nothing"))


def test_wrong_digest_is_rejected_and_leaves_nothing(store: Store) -> None:
    blob = os.urandom(MiB + 10)
    claimed = digest(b"something else")
    with pytest.raises(ArgumentError) as err:
        store.put_artifact("alice", claimed, pieces(blob), declared_size=len(blob), **LIMITS)
    assert err.value.argument == "sha256"
    assert store.stat_artifact("alice", claimed) is None
    put(store, "alice", os.urandom(15 * MiB), max_bytes=16 * MiB)  # the failed upload used no quota


@pytest.mark.parametrize("declared", [10, 5000])
def test_wrong_size_is_rejected(store: Store, declared: int) -> None:
    blob = os.urandom(1000)
    with pytest.raises(ArgumentError) as err:
        store.put_artifact("alice", digest(blob), pieces(blob), declared_size=declared, **LIMITS)
    assert err.value.argument == "size"
    assert store.stat_artifact("alice", digest(blob)) is None


def test_malformed_digest_is_rejected(store: Store) -> None:
    with pytest.raises(ArgumentError) as err:
        store.put_artifact("alice", "md5:abc", [b"x"], declared_size=1, **LIMITS)
    assert err.value.argument == "sha256"


def test_size_limit_names_the_limit(store: Store) -> None:
    blob = os.urandom(3 * MiB)
    with pytest.raises(ResourceExhaustedError) as err:
        put(store, "alice", blob, max_bytes=2 * MiB)
    assert f"max_artifact_bytes ({2 * MiB})" in err.value.message
    assert store.stat_artifact("alice", digest(blob)) is None


def test_quota_is_per_tenant_and_names_the_limit(store: Store) -> None:
    quota = {"max_bytes": 4 * MiB, "quota_bytes": 5 * MiB}
    put(store, "alice", os.urandom(3 * MiB), **quota)
    with pytest.raises(ResourceExhaustedError) as err:
        put(store, "alice", os.urandom(3 * MiB), **quota)
    assert f"tenant_quota_bytes ({5 * MiB})" in err.value.message
    put(store, "bob", os.urandom(3 * MiB), **quota)  # bob's quota is his own
    put(store, "alice", os.urandom(2 * MiB), **quota)  # exactly at the quota is allowed
