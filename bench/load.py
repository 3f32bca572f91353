"""Load benchmark: one coordinator (``faultlab serve``, its own process and local Ray) under
status polling, many event subscribers, many concurrent campaigns and a Redis outage.

Runs against a Redis it starts itself (append-only file on, so that a ``kill -9`` and restart
keeps the data) and, for polling and concurrent campaigns, against SQLite too. Prints, as its
last line, one JSON object with ``status_polls_per_s`` (target >= 1000), ``subscribers`` (held at
once; every one must receive the whole log) with ``event_latency_p99_ms`` (write to delivery of
the events written while the streams were open) and ``campaign_slowdown_with_subscribers`` (the same
campaign with the subscribers vs none), ``concurrent_campaigns`` with ``campaigns_lost``,
``coordinator_rss_mb`` (before / peak / after) and ``redis_outage_recovered``. Sizes are
arguments and appear in the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def spec(trials: int, seed: int, size: int = 32) -> dict[str, Any]:
    from tests.service.specs import fault_spec

    return fault_spec(trials=trials, seed=seed, size=size, name="bench-load")


class Redis:
    """``redis-server`` with AOF on in a temporary folder; restartable on the same data."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fl-load-redis-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--save", ""], stdout=subprocess.DEVNULL)
        import redis

        for _ in range(100):
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.peak = self.now()
        self.running = True

    def now(self) -> float:
        return float(self.process.memory_info().rss) / 2**20

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.now())
            time.sleep(0.1)


def status_polls(address: str, campaign_id: str, seconds: float, threads: int) -> float:
    import grpc

    from faultlab.v1 import faultlab_pb2 as pb
    from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

    def poll(_: int) -> int:
        with grpc.insecure_channel(address) as channel:
            stub, count, end = pb_grpc.FaultlabStub(channel), 0, time.monotonic() + seconds
            while time.monotonic() < end:
                stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign_id), timeout=10)
                count += 1
            return count

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(poll, range(threads)))
    return total / (time.monotonic() - started)


def timed_campaign(address: str, trials: int, seed: int, size: int = 32) -> tuple[str, float]:
    from faultlab import Client

    with Client(address) as c:
        started = time.monotonic()
        job = c.submit(spec(trials, seed, size))
        job.wait(timeout=900)
        return job.id, time.monotonic() - started


async def _subscribe(
    address: str, campaign_id: str, n: int, latencies: list[float]
) -> list[int | BaseException]:
    """Follows the campaign ``n`` times at once; each subscriber's count of events (or its
    error)."""
    import grpc

    from faultlab.v1 import faultlab_pb2 as pb
    from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.FaultlabStub(channel)

        async def one() -> int:  # as the SDK follows a campaign: one EventBatch per wake-up
            seen = 0
            call = stub.StreamEventBatches(pb.StreamEventsRequest(campaign_id=campaign_id),
                                           timeout=900)
            opened = time.time()
            async for batch in call:
                now = time.time()
                # Latency of live events only: an event written before this stream opened
                # measures how late the subscriber came, not how fast events are delivered.
                latencies.extend(now - e.time for e in batch.events if e.time >= opened)
                seen += len(batch.events)
            return seen

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        return list(await asyncio.gather(*tasks, return_exceptions=True))


def with_subscribers(address: str, n: int, trials: int, seed: int, size: int) -> dict[str, Any]:
    """The campaign run while ``n`` subscribers follow it (each from its first event):
    timed as :func:`timed_campaign`, submit to terminal. A subscriber is served when its stream
    ended normally with every event of the campaign's log."""
    from faultlab import Client

    with Client(address) as c:
        latencies: list[float] = []
        holder: list[list[int | BaseException]] = []
        started = time.monotonic()
        job = c.submit(spec(trials, seed, size))
        thread = threading.Thread(target=lambda: holder.append(asyncio.run(
            _subscribe(address, job.id, n, latencies))), daemon=True)
        thread.start()
        job.wait(timeout=900)
        seconds = time.monotonic() - started
        thread.join(timeout=120)
        logged = sum(1 for _ in job.events())  # the whole log, read once more afterwards
    ordered = sorted(latencies) or [float("nan")]
    counts = holder[0] if holder else []
    return {"seconds": seconds, "served": sum(1 for r in counts if r == logged),
            "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))]}


def concurrent(address: str, n: int, seed: int) -> int:
    """Submits ``n`` small campaigns at once; returns how many SUCCEEDED."""
    from faultlab import Client

    def run(i: int) -> bool:
        with Client(address, timeout=120) as c:
            status = c.submit(spec(4, seed + i)).wait(timeout=900, raise_on_failure=False)
            return status.state.value == "SUCCEEDED"

    with ThreadPoolExecutor(32) as pool:
        return sum(pool.map(run, range(n)))


def redis_outage(address: str, redis: Redis, trials: int, seed: int) -> bool:
    """kill -9 Redis mid-campaign, restart it on the same AOF: the campaign must complete."""
    from faultlab import Client

    with Client(address, timeout=10) as c:
        job = c.submit(spec(trials, seed))
        deadline = time.monotonic() + 300
        while job.status().trials_done == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        redis.kill9()
        time.sleep(3)
        redis.start()
        status = job.wait(timeout=300, raise_on_failure=False)
        return status.state.value == "SUCCEEDED" and status.trials_done == trials


def bench_store(store: str, args: argparse.Namespace, redis: Redis | None) -> dict[str, Any]:
    from tests.service.cluster import ServeProcess

    served = ServeProcess(store, extra=["--max-active-per-tenant", str(args.campaigns + 10)])
    rss = RssSampler(served.proc.pid)
    before = rss.now()
    rss.start()
    out: dict[str, Any] = {}
    try:
        first, baseline = timed_campaign(served.address, args.trials, 1)
        out["status_polls_per_s"] = round(status_polls(served.address, first, 5.0, 8))
        ok = concurrent(served.address, args.campaigns, 1000)
        out.update(concurrent_campaigns=args.campaigns, campaigns_lost=args.campaigns - ok)
        if redis is not None:
            # The timed campaign, warmed once (its first run pays for worker start-up); the
            # baseline is the faster of a run before and a run after the one with subscribers.
            timed_campaign(served.address, args.stream_trials, 2, args.stream_size)
            _, before_subs = timed_campaign(served.address, args.stream_trials, 5, args.stream_size)
            subs = with_subscribers(served.address, args.subscribers, args.stream_trials, 3,
                                    args.stream_size)
            _, after_subs = timed_campaign(served.address, args.stream_trials, 6, args.stream_size)
            baseline = min(before_subs, after_subs)
            out.update(subscribers=args.subscribers, subscribers_served=subs["served"],
                       event_latency_p99_ms=round(subs["p99_ms"], 1),
                       campaign_seconds=round(baseline, 2),
                       campaign_seconds_with_subscribers=round(subs["seconds"], 2),
                       campaign_slowdown_with_subscribers=round(subs["seconds"] / baseline, 2))
            out["redis_outage_recovered"] = redis_outage(served.address, redis, args.trials, 4)
    finally:
        rss.running = False
        rss.join()
        out["coordinator_rss_mb"] = {"before": round(before), "peak": round(rss.peak),
                                     "after": round(rss.now())}
        served.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--trials", type=int, default=480,
                        help="trials of the campaign polled and of the outage campaign")
    parser.add_argument("--stream-trials", type=int, default=3000,
                        help="trials of the campaign timed with and without subscribers")
    parser.add_argument("--stream-size", type=int, default=120,
                        help="test images each trial of that campaign evaluates")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    redis = Redis()
    try:
        result: dict[str, Any] = {"size": {"subscribers": args.subscribers,
                                           "campaigns": args.campaigns, "trials": args.trials,
                                           "stream_trials": args.stream_trials,
                                           "stream_size": args.stream_size}}
        result.update(bench_store(f"{redis.url}?prefix=load", args, redis))
        if not args.no_sqlite:
            with tempfile.TemporaryDirectory() as tmp:
                sqlite = bench_store(f"sqlite://{tmp}/load.db", args, None)
            result["sqlite"] = sqlite
    finally:
        redis.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
