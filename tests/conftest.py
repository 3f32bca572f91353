"""Shared fixtures: one Ray instance per session, a real Redis server, an isolated FAULTLAB_HOME,
and coordinators running a real gRPC server on localhost."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Zoo models are cached under FAULTLAB_HOME; tests use their own (set before any import).
os.environ.setdefault("FAULTLAB_HOME", str(Path(tempfile.gettempdir()) / "faultlab-test-home"))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray instance for the whole session (starting Ray costs ~6 s)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False, object_store_memory=300 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def redis_base_url() -> str:
    """A real Redis server (the one on 127.0.0.1:6379, or one started for the session)."""
    from tests.redis_server import ensure_redis

    return ensure_redis()


@pytest.fixture
def redis_url(redis_base_url: str) -> Iterator[str]:
    """A Redis store URL with a unique key prefix; its keys are deleted afterwards."""
    import redis

    prefix = f"fltest-{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in redis_base_url else "?"
    yield f"{redis_base_url}{sep}prefix={prefix}"
    client = redis.Redis.from_url(redis_base_url.split("?")[0])
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'faultlab.db'}"


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each service test runs once on each store backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'faultlab.db'}"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def server_factory(ray_session: None) -> Iterator[Callable[..., object]]:
    """Starts coordinators (real gRPC on localhost, the session's Ray) on a given store."""
    from faultlab.server.app import EmbeddedServer

    started: list[EmbeddedServer] = []

    def start(store: str, **kwargs: object) -> EmbeddedServer:
        server = EmbeddedServer(store, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
