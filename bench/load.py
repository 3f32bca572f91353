"""Load benchmark: one coordinator (``faultlab serve``, its own process and local Ray) under
status polling, many event subscribers, many concurrent campaigns and a Redis outage.

Runs against a Redis it starts itself (append-only file on, so that a ``kill -9`` and restart
keeps the data) and, for polling and concurrent campaigns, against SQLite too. Prints, as its
last line, one JSON object with ``status_polls_per_s`` (target >= 1000), ``concurrent_campaigns``
with ``campaigns_lost``, ``coordinator_rss_mb`` (before / peak / after),
``redis_outage_recovered``, and the subscriber figures:

* ``subscribers`` watchers held at once, following the campaign as ``faultlab watch`` does
  (state and progress events; each must receive every such event of the log), with
  ``event_latency_p99_ms`` (write to delivery of the events written while the streams were
  open) and ``campaign_slowdown_with_subscribers`` (the same campaign with them vs none);
* ``full_log``: as many subscribers of the whole log (every trial record: ~3000 events each
  per 3000 trials), with ``event_latency_p99_ms_upper_bound`` (each batch's oldest event,
  weighted by the batch's size: an upper bound of the per-event p99, read without decoding
  millions of events in the subscribers' process) and ``campaign_slowdown``.

The subscribers run in a process of their own on the same 2 cores as the coordinator and
Ray's workers, so their CPU (``subscribers_cpu_s``) counts against the campaign here, as it
would not with remote clients; ``coordinator_cpu_s`` (and ``coordinator_cpu_s_alone_runs``)
say what the coordinator itself spent. Sizes are arguments and appear in the JSON;
``--only-streams`` runs only the subscriber figures.
"""

from __future__ import annotations

import argparse
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
        while self.running:  # every 20 ms: a loop without a pause would burn one of 2 cores
            self.peak = max(self.peak, self.now())
            time.sleep(0.02)
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


# The subscribers run in a process of their own, as remote clients would: the measurement is
# the coordinator's, not the GIL of the process that submits and times the campaign. It reads
# a campaign id from stdin, follows it N times at once (one EventBatch per wake-up, as the SDK
# does) and prints per subscriber its count of events, plus the latencies and its own CPU time.
_SUBSCRIBERS = """
import asyncio, json, resource, sys, time
import grpc
from faultlab.v1 import faultlab_pb2 as pb, faultlab_pb2_grpc as pb_grpc

async def main(address, n, types, exact):
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()
        print("ready", flush=True)
        campaign_id = sys.stdin.readline().strip()
        stub = pb_grpc.FaultlabStub(channel)
        latencies, weights, batches = [], [], [0]
        async def one():
            seen = 0
            request = pb.StreamEventsRequest(campaign_id=campaign_id, types=types)
            call = stub.StreamEventBatches(request, timeout=900)
            opened = time.time()
            async for batch in call:
                now, events = time.time(), batch.events
                batches[0] += 1
                # Live events only: one written before this stream opened measures how late
                # the subscriber came, not how fast events are delivered.
                if exact:
                    latencies.extend(now - e.time for e in events if e.time >= opened)
                elif events and events[0].time >= opened:
                    # The batch's oldest event is its latest: its latency, weighted by the
                    # batch's size, bounds every event's from above (per-event reads of
                    # millions of events would load these cores more than the service does).
                    latencies.append(now - events[0].time)
                    weights.append(len(events))
                seen += len(events)
            return seen
        counts = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"counts": [c if isinstance(c, int) else repr(c) for c in counts],
                      "latencies": latencies, "weights": weights or [1] * len(latencies),
                      "cpu_s": usage.ru_utime + usage.ru_stime, "batches": batches[0]}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), [t for t in sys.argv[3].split(",") if t],
                 sys.argv[4] == "exact"))
"""


def weighted_quantile(values: list[float], weights: list[int], q: float) -> float:
    """The ``q`` quantile of ``values`` repeated ``weights`` times."""
    if not values:
        return float("nan")
    pairs = sorted(zip(values, weights, strict=True))
    target, total = q * sum(weights), 0
    for value, weight in pairs:
        total += weight
        if total >= target:
            return value
    return pairs[-1][0]


def with_subscribers(address: str, n: int, trials: int, seed: int, size: int,
                     types: str, coordinator_pid: int) -> dict[str, Any]:
    """The campaign run while ``n`` subscribers (their own process) follow it from its first
    event, delivering ``types`` (empty: the whole log): timed as :func:`timed_campaign`, submit
    to terminal. A subscriber is served when its stream ended normally with every event of
    those types in the campaign's log."""
    import psutil

    from faultlab import Client

    exact = "exact" if types else "bound"
    readers = subprocess.Popen([sys.executable, "-c", _SUBSCRIBERS, address, str(n), types,
                                exact], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               cwd=ROOT)
    assert readers.stdout is not None and readers.stdout.readline() == "ready\n"
    coordinator = psutil.Process(coordinator_pid)
    cpu_before = sum(coordinator.cpu_times()[:2])
    with Client(address) as c:
        started = time.monotonic()
        job = c.submit(spec(trials, seed, size))
        assert readers.stdin is not None
        readers.stdin.write(job.id + "\n")
        readers.stdin.flush()
        job.wait(timeout=900)
        seconds = time.monotonic() - started
        out, _ = readers.communicate(timeout=900)
        cpu = sum(coordinator.cpu_times()[:2]) - cpu_before  # not the bench's own count below
        wanted = set(types.split(",")) | {"state"} if types else None
        logged = sum(1 for e in job.events() if wanted is None or e.type in wanted)
    got = json.loads(out)
    return {"seconds": seconds, "served": sum(1 for r in got["counts"] if r == logged),
            "events_per_subscriber": logged,
            "p99_ms": 1000 * weighted_quantile(got["latencies"], got["weights"], 0.99),
            "subscribers_cpu_s": round(got["cpu_s"], 2), "messages": got["batches"],
            "coordinator_cpu_s": round(cpu, 2)}


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


def stream_figures(address: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """The timed campaign alone, with ``--subscribers`` watchers (state and progress, as
    ``faultlab watch`` follows a campaign) and with as many whole-log subscribers (every trial
    record). Warmed once (the first run pays for worker start-up); each slowdown is against
    the fastest of the runs without subscribers before, between and after."""
    import psutil

    coordinator = psutil.Process(pid)
    trials, size, n = args.stream_trials, args.stream_size, args.subscribers

    def alone(seed: int) -> tuple[float, float]:
        cpu = sum(coordinator.cpu_times()[:2])
        seconds = timed_campaign(address, trials, seed, size)[1]
        return seconds, sum(coordinator.cpu_times()[:2]) - cpu

    alone(2)
    runs = [alone(5)]
    watch = with_subscribers(address, n, trials, 3, size, "state,progress", pid)
    runs.append(alone(6))
    full = with_subscribers(address, n, trials, 7, size, "", pid)
    runs.append(alone(8))
    baseline = min(seconds for seconds, _ in runs)
    return {
        "subscribers": n, "subscribers_follow": "state,progress (faultlab watch)",
        "subscribers_served": watch["served"],
        "event_latency_p99_ms": round(watch["p99_ms"], 1),
        "campaign_seconds": round(baseline, 2),
        "campaign_seconds_with_subscribers": round(watch["seconds"], 2),
        "campaign_slowdown_with_subscribers": round(watch["seconds"] / baseline, 2),
        "watchers": {k: v for k, v in watch.items() if k not in ("seconds", "p99_ms")},
        "full_log": {
            "subscribers": n, "served": full["served"],
            "events_per_subscriber": full["events_per_subscriber"],
            "messages": full["messages"],
            "event_latency_p99_ms_upper_bound": round(full["p99_ms"], 1),
            "campaign_slowdown": round(full["seconds"] / baseline, 2),
            "subscribers_cpu_s": full["subscribers_cpu_s"],
            "coordinator_cpu_s": full["coordinator_cpu_s"]},
        "campaign_seconds_alone_runs": [round(a, 2) for a, _ in runs],
        "coordinator_cpu_s_alone_runs": [round(c, 2) for _, c in runs],
    }


def bench_store(store: str, args: argparse.Namespace, redis: Redis | None) -> dict[str, Any]:
    from tests.service.cluster import ServeProcess

    served = ServeProcess(store, extra=["--max-active-per-tenant", str(args.campaigns + 10)])
    rss = RssSampler(served.proc.pid)
    before = rss.now()
    rss.start()
    out: dict[str, Any] = {}
    try:
        if args.only_streams:
            out.update(stream_figures(served.address, served.proc.pid, args))
            return out
        first, baseline = timed_campaign(served.address, args.trials, 1)
        out["status_polls_per_s"] = round(status_polls(served.address, first, 5.0, 8))
        ok = concurrent(served.address, args.campaigns, 1000)
        out.update(concurrent_campaigns=args.campaigns, campaigns_lost=args.campaigns - ok)
        if redis is not None:
            out.update(stream_figures(served.address, served.proc.pid, args))
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
    parser.add_argument("--stream-trials", type=int, default=12000,
                        help="trials of the campaign timed with and without subscribers (about "
                             "8 s alone on 2 cores: long enough that the subscribers' RPC "
                             "set-ups, ~0.3 ms each, are not most of what is measured)")
    parser.add_argument("--stream-size", type=int, default=120,
                        help="test images each trial of that campaign evaluates")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--only-streams", action="store_true",
                        help="only the subscriber figures (on Redis)")
    args = parser.parse_args()
    redis = Redis()
    try:
        result: dict[str, Any] = {"size": {"subscribers": args.subscribers,
                                           "campaigns": args.campaigns, "trials": args.trials,
                                           "stream_trials": args.stream_trials,
                                           "stream_size": args.stream_size}}
        result.update(bench_store(f"{redis.url}?prefix=load", args, redis))
        if not (args.no_sqlite or args.only_streams):
            with tempfile.TemporaryDirectory() as tmp:
                sqlite = bench_store(f"sqlite://{tmp}/load.db", args, None)
            result["sqlite"] = sqlite
    finally:
        redis.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
