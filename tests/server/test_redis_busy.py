"""A Redis that is up but busy (a long script runs elsewhere: ``BUSY``) is UNAVAILABLE to the
store, retryable like an unreachable one, never an internal error; it serves again after."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from faultlab.errors import UnavailableError
from faultlab.server.store import open_store
from tests.redis_server import _answers, _free_port, _stop

# Spins for 1.5 s of server time: every other client gets BUSY after the threshold (50 ms).
_SPIN = """local t = redis.call('TIME')
while true do
  local n = redis.call('TIME')
  if (n[1] - t[1]) * 1000000 + (n[2] - t[2]) > 1500000 then return 1 end
end"""


@pytest.fixture
def busy_redis() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--busy-reply-threshold", "50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    yield url
    _stop(process)


def test_busy_redis_is_unavailable_then_serves_again(busy_redis: str) -> None:
    store = open_store(f"{busy_redis}?prefix=busy")
    try:
        assert store.get_campaign("0123456789abcdef") is None
        spin = threading.Thread(target=lambda: redis.Redis.from_url(busy_redis).eval(_SPIN, 0))
        spin.start()
        time.sleep(0.4)
        with pytest.raises(UnavailableError, match="busy"):
            store.get_campaign("0123456789abcdef")
        spin.join(timeout=10)
        assert store.get_campaign("0123456789abcdef") is None
    finally:
        store.close()
