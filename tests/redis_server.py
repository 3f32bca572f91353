"""A real Redis server for tests: the one on 127.0.0.1:6379, or a private one started here.

``ensure_redis()`` returns the URL of a server that answers PING. When nothing listens on
the default port it starts ``redis-server`` on a free port, without persistence, and stops
it when the interpreter exits. Integration tests share one server and keep apart by using
a unique key prefix each (``?prefix=…`` in the store URL).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import socket
import subprocess
import time

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_START_TIMEOUT_S = 10.0


class RedisUnavailable(RuntimeError):
    """No server answers and none can be started (``redis-server`` is not installed)."""


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@functools.cache
def ensure_redis() -> str:
    """URL of a reachable Redis server; starts a private one (once per process) if needed."""
    if _answers(DEFAULT_URL):
        return DEFAULT_URL
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "nothing answers on 127.0.0.1:6379 and redis-server is not installed"
        )
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, process)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RedisUnavailable(f"redis-server on port {port} did not start")
        time.sleep(0.05)
    return url
