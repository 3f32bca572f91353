"""Artifact uploads over real gRPC, on both stores: dedup, integrity, limits, tenants."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultlab import ArgumentError, Client, NotFoundError, UnauthenticatedError
from faultlab.errors import ResourceExhaustedError
from faultlab.server.config import CoordinatorConfig
from faultlab.v1 import faultlab_pb2 as pb

MiB = 1 << 20


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


class CountingUploads:
    """Wraps a stub's UploadArtifact and counts the chunk messages it sends."""

    def __init__(self, client: Client) -> None:
        self.calls = 0
        self.chunks = 0
        self._inner = client._stub.UploadArtifact
        client._stub.UploadArtifact = self  # type: ignore[method-assign]

    def __call__(self, messages: Iterator[pb.UploadArtifactRequest], **kwargs: Any) -> Any:
        self.calls += 1

        def counted() -> Iterator[pb.UploadArtifactRequest]:
            for message in messages:
                self.chunks += message.WhichOneof("part") == "chunk"
                yield message

        return self._inner(counted(), **kwargs)


@pytest.fixture
def server(server_factory, store_url):  # type: ignore[no-untyped-def]
    return server_factory(store_url)


def test_chunked_upload_round_trips_byte_exact(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob = os.urandom(3 * MiB + 777)
    path = tmp_path / "weights.safetensors"
    path.write_bytes(blob)
    with Client(server.address) as client:
        counter = CountingUploads(client)
        ref = client.upload(path)
        assert ref == digest(blob)
        assert (client.last_upload_bytes, counter.chunks) == (len(blob), 4)
        stat = client._call(client._stub.StatArtifact, pb.StatArtifactRequest(sha256=ref))
        assert (stat.sha256, stat.size, stat.owner, stat.name) == (
            ref, len(blob), "default", "weights.safetensors")
    store = server.running.coordinator.lifecycle.store
    assert store.read_artifact("default", ref) == blob


def test_second_upload_sends_no_chunks(server) -> None:  # type: ignore[no-untyped-def]
    blob = os.urandom(MiB + 5)
    with Client(server.address) as client:
        counter = CountingUploads(client)
        assert client.upload(blob) == digest(blob)
        assert (counter.calls, counter.chunks) == (1, 2)
        assert client.upload(blob) == digest(blob)
        assert client.last_upload_bytes == 0
        assert (counter.calls, counter.chunks) == (1, 2)


def _raw_upload(client: Client, claimed: str, blob: bytes, size: int | None = None) -> Any:
    def messages() -> Iterator[pb.UploadArtifactRequest]:
        header = pb.ArtifactHeader(sha256=claimed, size=len(blob) if size is None else size)
        yield pb.UploadArtifactRequest(header=header)
        yield pb.UploadArtifactRequest(chunk=blob)

    return client._call(client._stub.UploadArtifact, messages())


def test_wrong_digest_is_invalid_argument(server) -> None:  # type: ignore[no-untyped-def]
    blob = os.urandom(1000)
    wrong = digest(b"not this")
    with Client(server.address) as client:
        with pytest.raises(ArgumentError) as err:
            _raw_upload(client, wrong, blob)
        assert (err.value.code, err.value.argument) == ("INVALID_ARGUMENT", "sha256")
        with pytest.raises(ArgumentError) as size:
            _raw_upload(client, digest(blob), blob, size=10)
        assert size.value.argument == "size"
        with pytest.raises(NotFoundError):
            client._call(client._stub.StatArtifact, pb.StatArtifactRequest(sha256=wrong))


def test_first_message_must_be_the_header(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.address) as client, pytest.raises(ArgumentError) as err:
        client._call(client._stub.UploadArtifact, iter([pb.UploadArtifactRequest(chunk=b"x")]))
    assert err.value.argument == "header"


def test_size_limit_and_quota_name_the_limit(server_factory, store_url) -> None:  # type: ignore[no-untyped-def]
    config = CoordinatorConfig(max_artifact_bytes=2 * MiB, tenant_quota_bytes=3 * MiB)
    server = server_factory(store_url, config=config)
    with Client(server.address) as client:
        with pytest.raises(ResourceExhaustedError) as big:
            client.upload(os.urandom(2 * MiB + 1))
        assert big.value.code == "RESOURCE_EXHAUSTED"
        assert f"max_artifact_bytes ({2 * MiB})" in big.value.message
        client.upload(os.urandom(2 * MiB))
        with pytest.raises(ResourceExhaustedError) as quota:
            client.upload(os.urandom(2 * MiB))
        assert f"tenant_quota_bytes ({3 * MiB})" in quota.value.message
        client.upload(os.urandom(MiB))  # exactly at the quota


def test_another_tenants_artifact_is_not_found(server_factory, store_url) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(store_url, tokens={"tok-a": "alice", "tok-b": "bob"})
    blob = os.urandom(4096)
    with Client(server.address, token="wrong") as bad, pytest.raises(UnauthenticatedError):
        _raw_upload(bad, digest(blob), blob)  # a client stream is authenticated too
    with (
        Client(server.address, token="tok-a") as alice,
        Client(server.address, token="tok-b") as bob,
    ):
        ref = alice.upload(blob)
        with pytest.raises(NotFoundError) as err:
            bob._call(bob._stub.StatArtifact, pb.StatArtifactRequest(sha256=ref))
        assert err.value.id == ref
        assert bob.upload(blob) == ref
        assert bob.last_upload_bytes == len(blob)  # bob's copy is his own upload
        stat = bob._call(bob._stub.StatArtifact, pb.StatArtifactRequest(sha256=ref))
        assert stat.owner == "bob"
