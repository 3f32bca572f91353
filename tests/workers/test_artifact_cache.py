"""The shared on-disk artifact cache: atomic writes under concurrency, namespaces, metadata,
the memory → disk → compute lookup and its audit log, and ``$FAULTLAB_HOME``."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from multiprocessing.queues import Queue
from pathlib import Path

import pytest

from faultlab.paths import data_dir, embedded_store_path, faultlab_home
from faultlab.workers.artifact_cache import ArtifactCache

PAYLOAD_BYTES = 1 << 20
WRITES_PER_WRITER = 25


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FAULTLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _writer(writer: int) -> None:
    cache = ArtifactCache("torn")
    for i in range(WRITES_PER_WRITER):
        # Every payload is one byte value repeated: a torn file mixes two values or is short.
        cache.put("shared", bytes([(writer * WRITES_PER_WRITER + i) % 251]) * PAYLOAD_BYTES, ".bin")


def _reader(until: float, result: Queue[tuple[int, int]]) -> None:
    cache = ArtifactCache("torn")
    reads = torn = 0
    while time.monotonic() < until:
        path = cache.get("shared", ".bin")
        if path is None:
            continue
        data = path.read_bytes()
        reads += 1
        if len(data) != PAYLOAD_BYTES or data.count(data[:1]) != PAYLOAD_BYTES:
            torn += 1
    result.put((reads, torn))


def _compute_once() -> None:
    def compute() -> dict[str, int]:
        time.sleep(0.3)  # long enough that every process asks while the first computes
        return {"answer": 42}

    value, _ = ArtifactCache("once", audit_log="log.jsonl").load_or_compute("k", compute)
    assert value == {"answer": 42}


def test_faultlab_home_is_honoured_and_resolved_per_call(home: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert faultlab_home() == home and home.is_dir()
    assert embedded_store_path() == home / "faultlab.db"
    assert data_dir("planetoid") == home / "data" / "planetoid"
    cache = ArtifactCache("zoo")
    assert cache.put("m-0123", b"x") == home / "zoo" / "m-0123.pt"
    monkeypatch.setenv("FAULTLAB_HOME", str(home / "other"))
    assert cache.get("m-0123") is None  # follows the variable, not the first home it saw
    assert cache.path("m-0123") == home / "other" / "zoo" / "m-0123.pt"


def test_default_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FAULTLAB_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert faultlab_home() == tmp_path / ".cache" / "faultlab"


def test_get_after_put_with_metadata_and_writer(home: Path) -> None:
    cache = ArtifactCache("sampling")
    assert cache.get("a") is None and cache.meta("a") is None
    path = cache.put("a", b"payload", meta={"oracle": "msp"})
    assert cache.get("a") == path and path.read_bytes() == b"payload"
    assert cache.meta("a") == {"oracle": "msp"}
    cache.put("b", lambda out: out.write(b"streamed"), ".npz")
    assert cache.get("b") is None
    assert (stored := cache.get("b", ".npz")) is not None and stored.read_bytes() == b"streamed"
    assert sorted(p.name for p in cache.root.iterdir()) == ["a.pt", "a.pt.json", "b.npz"]


def test_namespaces_and_nested_keys_are_separate(home: Path) -> None:
    zoo, sampling = ArtifactCache("zoo"), ArtifactCache("sampling")
    zoo.put("same", b"zoo")
    sampling.put("same", b"sampling")
    assert zoo.get("same") != sampling.get("same")
    assert (home / "zoo" / "same.pt").read_bytes() == b"zoo"
    watermark = ArtifactCache("watermark")
    watermark.put("embedding/abc", b"e")
    watermark.put("sensitivity/abc", b"s")
    assert (home / "watermark" / "embedding" / "abc.pt").read_bytes() == b"e"
    assert (home / "watermark" / "sensitivity" / "abc.pt").read_bytes() == b"s"


@pytest.mark.parametrize("key", ["", "../escape", "a/../b", "/abs", "a//b", "a\\b", "."])
def test_keys_cannot_leave_the_namespace(home: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid artifact key"):
        ArtifactCache("zoo").path(key)


def test_failed_write_leaves_nothing_behind(home: Path) -> None:
    cache = ArtifactCache("zoo")
    cache.put("kept", b"old")

    def broken(out: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        cache.put("kept", broken)
    assert (kept := cache.get("kept")) is not None and kept.read_bytes() == b"old"
    assert [p.name for p in cache.root.iterdir()] == ["kept.pt"]


def test_concurrent_writers_never_produce_a_torn_read(home: Path) -> None:
    ctx = mp.get_context("spawn")
    result: Queue[tuple[int, int]] = ctx.Queue()
    ArtifactCache("torn").put("shared", bytes([250]) * PAYLOAD_BYTES, ".bin")
    reader = ctx.Process(target=_reader, args=(time.monotonic() + 8.0, result))
    reader.start()
    writers = [ctx.Process(target=_writer, args=(w,)) for w in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
        assert w.exitcode == 0
    reads, torn = result.get(timeout=60)
    reader.join(10)
    assert reads > 0 and torn == 0
    names = [p.name for p in (home / "torn").iterdir()]
    assert names == ["shared.bin"], "temporary files left behind"


def test_load_or_compute_memory_disk_computed_and_audit(home: Path) -> None:
    cache = ArtifactCache("watermark", memory_limit=1, audit_log="embed-log.jsonl")
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    assert cache.load_or_compute("embedding/k", compute, {"kind": "embedding"}) == (
        {"n": 1}, "computed")
    assert cache.load_or_compute("embedding/k", compute) == ({"n": 1}, "memory")
    cache.load_or_compute("embedding/other", compute)  # evicts k (memory_limit=1)
    assert cache.load_or_compute("embedding/k", compute) == ({"n": 1}, "disk")
    cache.forget_memory()
    assert cache.load_or_compute("embedding/k", compute) == ({"n": 1}, "disk")
    assert cache.log_path is not None
    log = [json.loads(line) for line in cache.log_path.read_text().splitlines()]
    assert [(entry["key"], entry.get("kind")) for entry in log] == [
        ("embedding/k", "embedding"), ("embedding/other", None)]
    assert all(entry["compute_seconds"] >= 0 and entry["pid"] > 0 for entry in log)


def test_no_memory_and_no_log_by_default(home: Path) -> None:
    cache = ArtifactCache("zoo")
    assert cache.load_or_compute("k", lambda: {"v": 1})[1] == "computed"
    assert cache.load_or_compute("k", lambda: {"v": 2}) == ({"v": 1}, "disk")
    assert cache.log_path is None
    cache.audit({"ignored": True})
    assert sorted(p.name for p in cache.root.iterdir()) == ["k.pt", "k.pt.lock"]


def test_concurrent_processes_compute_once(home: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_compute_once) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    log = (home / "once" / "log.jsonl").read_text().splitlines()
    assert len(log) == 1
