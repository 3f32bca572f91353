"""A coordinator exits cleanly (issue 13, item 8): SIGTERM drains, parks running campaigns for
the next start and leaves no process behind; what a kill -9 leaves, the next start stops."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from faultlab import Client
from faultlab.server.store import open_store
from faultlab.states import CampaignState
from tests.marks import slow
from tests.service.cluster import ServeProcess
from tests.service.specs import fault_spec


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A FAULTLAB_HOME of its own (the process records live there), sharing the zoo cache."""
    shared = Path(os.environ["FAULTLAB_HOME"])
    (shared / "zoo").mkdir(parents=True, exist_ok=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / "zoo").symlink_to(shared / "zoo")
    monkeypatch.setenv("FAULTLAB_HOME", str(home))
    return home


def _session(pid: int) -> list[psutil.Process]:
    """Every live process of the process session ``pid`` leads (ServeProcess starts one)."""
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getsid(process.pid) == pid and process.pid != pid:
                found.append(process)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def _wait_gone(pid: int, timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    left = _session(pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _session(pid)
    return left


def test_sigterm_drains_parks_and_leaves_nothing(home: Path, tmp_path: Path) -> None:
    store, log = f"sqlite://{tmp_path / 'f.db'}", tmp_path / "serve.log"
    served = ServeProcess(store, log=log)
    with Client(served.address) as c:
        job = c.submit(fault_spec(trials=160, seed=41))
        deadline = time.monotonic() + 120
        while job.status().trials_done == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
    os.kill(served.proc.pid, signal.SIGTERM)  # the coordinator only, as an init system does
    assert served.proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "SIGTERM received" not in text and "Fatal Python error" not in text
    assert not _wait_gone(served.proc.pid, 20), "processes left behind"
    assert not list(home.glob("ray-processes-*.json"))

    # Parked: left RUNNING for the next start, which resumes it as after a crash
    # (tests/service/test_recovery.py); or it had finished before the signal.
    record = open_store(store).get_campaign(job.id)
    assert record is not None
    assert record.state in (CampaignState.RUNNING, CampaignState.SUCCEEDED)


@pytest.mark.slow
@slow
def test_kill9_leftovers_are_stopped_by_the_next_start(home: Path, tmp_path: Path) -> None:
    store = f"sqlite://{tmp_path / 'f.db'}"
    served = ServeProcess(store)
    time.sleep(2)  # Ray's agents are up
    os.kill(served.proc.pid, signal.SIGKILL)
    served.proc.wait()
    time.sleep(3)
    left = _session(served.proc.pid)
    assert left, "Ray's agents outlive a killed coordinator (docs/deploy.md)"
    assert list(home.glob("ray-processes-*.json"))
    again = ServeProcess(store)
    try:
        assert not [p for p in left if p.is_running()]
    finally:
        again.stop()
