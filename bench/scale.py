"""How a campaign's cost grows with its size: trials/s, coordinator RSS, store bytes per trial.

For each store (SQLite, Redis) a real coordinator is started as its own process (``faultlab
serve``: gRPC + local Ray + the store), and fault campaigns of 10³, 10⁴, 10⁵ and 2×10⁵
trials (a tiny model: ``digits_cnn`` on 8 digits images, uniform weight bit flips) are
submitted through the SDK one after another and waited for (after a 100-trial warm-up campaign
that starts Ray's workers and trains or loads the model). Measured per campaign:

* ``trials_per_s`` — trials ÷ (submit → SUCCEEDED) wall time;
* ``coordinator_rss_mb`` — the coordinator process's resident memory (``psutil``, sampled
  every 0.5 s: the peak while the campaign ran; Ray's worker processes are not included);
* ``store_bytes_per_trial`` — growth of the SQLite file (after a WAL checkpoint) or of the
  Redis keys under the run's prefix (``MEMORY USAGE``), per trial;
* ``parquet_rows_per_s`` — ``job.results().to_pandas().to_parquet(...)`` rows per second
  (paged reads through gRPC, the CLI's ``faultlab results ID --format parquet``);
* ``report_seconds`` and ``report_rss_mb`` — ``job.report()`` (the coordinator aggregates
  every result, a page at a time) and the coordinator's peak RSS while it did.

Then a power law ``seconds ∝ trials^b`` (and RSS, store bytes) is fitted by least squares on
log–log scale: ``b ≈ 1`` is linear growth. Last line: one JSON object with ``*_exponent``
figures, ``rss_below_1gb_at_200k`` and, per store, the Parquet rows/s of the largest campaign
(``*_parquet_rows_per_s_largest``) and the minimum over all sizes (a 10³-row export is mostly
fixed cost). Targets: RSS < 1 GB at 200k trials, ≥ 50k rows/s.

Run: ``python bench/scale.py`` (about half an hour on 2 cores); ``--quick`` runs 10³, 3×10³
and 10⁴ trials; ``--stores sqlite`` skips Redis (needs ``redis-server`` on 127.0.0.1:6379).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spec(trials: int, seed: int) -> dict[str, Any]:
    return {"kind": "faults", "name": f"scale-{trials}", "seed": seed,
            "model": {"name": "digits_cnn"},
            "dataset": {"name": "digits", "split": "test", "size": 8},
            "execution": {"shard_seconds": 2.0, "max_trials": max(trials, 1000)},
            "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                       "trials": trials}}


class Coordinator:
    """A ``faultlab serve`` process on a free port, and its RSS sampler."""

    def __init__(self, store: str, home: Path, num_cpus: int) -> None:
        self.port = free_port()
        env = {**os.environ, "FAULTLAB_HOME": os.environ.get("FAULTLAB_HOME", ""),
               "RAY_DEDUP_LOGS": "0"}
        if not env["FAULTLAB_HOME"]:
            env.pop("FAULTLAB_HOME")
        self.log = open(home / f"serve-{self.port}.log", "w")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "faultlab"), "serve", "--port", str(self.port),
             "--store", store, "--num-cpus", str(num_cpus)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.process = psutil.Process(self.proc.pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def wait_ready(self, client: Any, timeout: float = 300.0) -> None:
        """Until the coordinator answers a ListCampaigns call."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faultlab serve exited ({self.proc.returncode}); see "
                                   f"{self.log.name}")
            try:
                client.list(limit=1)
                return
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def reset_peak(self) -> None:
        self.peak = self.rss()

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def store_bytes(kind: str, location: str) -> int:
    """Bytes the store holds: the SQLite file (WAL checkpointed) or the prefix's Redis keys."""
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(location) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in Path(location).parent.glob(Path(location).name + "*"))
    import redis

    base, prefix = location.split("?prefix=")
    client = redis.Redis.from_url(base)
    return sum(int(client.memory_usage(k) or 0) for k in client.scan_iter(f"{prefix}:*",
                                                                       count=5000))


def run_store(kind: str, sizes: list[int], work: Path, redis_base: str, seed: int,
              num_cpus: int) -> dict[str, Any]:
    from faultlab import Client

    prefix = f"flscale-{uuid.uuid4().hex[:8]}"
    location = str(work / f"{kind}.db") if kind == "sqlite" else f"{redis_base}?prefix={prefix}"
    url = f"sqlite:///{location}" if kind == "sqlite" else location
    coordinator = Coordinator(url, work, num_cpus)
    rows: list[dict[str, Any]] = []
    try:
        with Client(f"127.0.0.1:{coordinator.port}", timeout=120) as client:
            coordinator.wait_ready(client)
            client.submit(spec(100, seed + 1)).wait(timeout=600, raise_on_failure=True)
            before = store_bytes(kind, location) if kind == "redis" else 0
            for n in sizes:
                coordinator.reset_peak()
                start = time.perf_counter()
                job = client.submit(spec(n, seed))
                status = job.wait(timeout=6 * 3600, raise_on_failure=True)
                seconds = time.perf_counter() - start
                after = store_bytes(kind, location)
                export_start = time.perf_counter()
                frame = job.results().to_pandas()  # as the CLI: pages the coordinator sizes
                frame.to_parquet(work / f"{kind}-{n}.parquet", index=False)
                export = time.perf_counter() - export_start
                campaign_peak = max(coordinator.peak, coordinator.rss())
                coordinator.reset_peak()
                report_start = time.perf_counter()
                job.report()  # the coordinator aggregates every result, a page at a time
                report_seconds = time.perf_counter() - report_start
                report_peak = max(coordinator.peak, coordinator.rss())
                row = {"trials": n, "state": status.state.name, "seconds": round(seconds, 2),
                       "trials_per_s": round(n / seconds, 1),
                       "coordinator_rss_mb": round(campaign_peak / 2**20, 1),
                       "report_seconds": round(report_seconds, 2),
                       "report_rss_mb": round(report_peak / 2**20, 1),
                       "store_bytes_per_trial": round((after - before) / n, 1),
                       "parquet_rows": len(frame),
                       "parquet_rows_per_s": round(len(frame) / export, 1)}
                before = after
                rows.append(row)
                print(kind, json.dumps(row), file=sys.stderr, flush=True)
    finally:
        coordinator.stop()
        if kind == "redis":
            import redis

            client_r = redis.Redis.from_url(redis_base)
            keys = list(client_r.scan_iter(f"{prefix}:*", count=5000))
            for i in range(0, len(keys), 5000):
                client_r.delete(*keys[i:i + 5000])
    return {"campaigns": rows, **fits(rows)}


def exponent(x: list[float], y: list[float]) -> float | None:
    """Least-squares slope of log y on log x (the power-law exponent)."""
    if len(x) < 2 or min(y) <= 0:
        return None
    return round(float(np.polyfit(np.log(x), np.log(y), 1)[0]), 3)


def fits(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = [float(r["trials"]) for r in rows]
    return {
        "seconds_exponent": exponent(n, [float(r["seconds"]) for r in rows]),
        # between the two largest campaigns only: fixed costs no longer hide the growth
        "seconds_exponent_largest": exponent(n[-2:], [float(r["seconds"]) for r in rows[-2:]]),
        "rss_mb_per_100k_trials": round((rows[-1]["coordinator_rss_mb"]
                                         - rows[0]["coordinator_rss_mb"])
                                        / max(n[-1] - n[0], 1) * 1e5, 1),
        "rss_exponent": exponent(n, [float(r["coordinator_rss_mb"]) for r in rows]),
        "store_bytes_exponent": exponent(
            n, [float(r["store_bytes_per_trial"]) * r["trials"] for r in rows]),
        "min_parquet_rows_per_s": min(r["parquet_rows_per_s"] for r in rows),
        # the largest campaign's export: small ones are mostly a page round trip's fixed cost
        "largest_parquet_rows_per_s": rows[-1]["parquet_rows_per_s"],
        "max_coordinator_rss_mb": max(r["coordinator_rss_mb"] for r in rows),
        "max_report_rss_mb": max(r["report_rss_mb"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,200000")
    parser.add_argument("--quick", action="store_true", help="10³, 3×10³ and 10⁴ trials")
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [1000, 3000, 10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    out: dict[str, Any] = {"benchmark": "scale", "quick": args.quick, "sizes": sizes,
                           "model": "digits_cnn", "inputs_per_trial": 8,
                           "cpus": psutil.cpu_count(), "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="faultlab-scale-") as tmp:
        for kind in args.stores.split(","):
            out[kind] = run_store(kind, sizes, Path(tmp), args.redis, args.seed, args.num_cpus)
    at_200k = [c["coordinator_rss_mb"] for k in ("sqlite", "redis") if k in out
               for c in out[k]["campaigns"] if c["trials"] >= 200_000]
    out["rss_below_1gb_at_200k"] = all(r < 1024 for r in at_200k) if at_200k else None
    reports = [c["report_rss_mb"] for k in ("sqlite", "redis") if k in out
               for c in out[k]["campaigns"] if c["trials"] >= 200_000]
    out["report_rss_below_1gb_at_200k"] = all(r < 1024 for r in reports) if reports else None
    for kind in ("sqlite", "redis"):
        if kind in out:
            out[f"{kind}_seconds_exponent"] = out[kind]["seconds_exponent"]
            out[f"{kind}_seconds_exponent_largest"] = out[kind]["seconds_exponent_largest"]
            out[f"{kind}_parquet_rows_per_s"] = out[kind]["min_parquet_rows_per_s"]
            out[f"{kind}_parquet_rows_per_s_largest"] = out[kind]["largest_parquet_rows_per_s"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
