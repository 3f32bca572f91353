"""Redis killed (kill -9) and restarted from its append-only file under a running campaign:
clients see UNAVAILABLE meanwhile, the runner waits with backoff and resumes, and the
campaign ends consistent — every trial event exactly once — with a log event about it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from faultlab import CampaignState, Client
from faultlab.errors import UnavailableError
from tests.service.cluster import free_port
from tests.service.specs import fault_spec


class AofRedis:
    """A private redis-server persisting every write (``appendfsync always``) in ``dir``."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.cmd = [binary, "--port", str(free_port()), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "yes", "--appendfsync", "always", "--dir", str(directory)]
        self.url = f"redis://127.0.0.1:{self.cmd[2]}/0"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def test_redis_killed_and_restarted_mid_campaign(server_factory: Any, tmp_path: Path) -> None:
    store = AofRedis(tmp_path)
    try:
        server = server_factory(f"{store.url}?prefix=outage")
        with Client(server.address, timeout=30) as client:
            job = client.submit(fault_spec(trials=600, seed=61, size=120))
            while job.status().trials_done < 60:
                time.sleep(0.02)
            store.kill9()
            with pytest.raises(UnavailableError):
                job.status()
            time.sleep(2.0)  # shards finish meanwhile; their results wait for the store
            store.start()
            status = job.wait(timeout=180)
            assert status.state is CampaignState.SUCCEEDED
            assert status.trials_done == status.trials_total == 600
            events = list(job.events())
    finally:
        store.stop()
    trials = Counter(e.data["key"] for e in events if e.type == "trial")
    assert len(trials) == 600 and set(trials.values()) == {1}
    logs = [e.data["message"] for e in events if e.type == "log"]
    assert any("store was unreachable" in m for m in logs), logs
    states = [e.data["state"] for e in events if e.type == "state"]
    assert states == ["QUEUED", "RUNNING", "SUCCEEDED"]
