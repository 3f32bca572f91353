"""Spine benchmark: what the service costs and what it buys.

Runs the same weight bit-flip campaign (resnet_small on digits, uniform sampling)

1. in a plain in-process loop (``faultlab.workers.local.run_local``, one torch thread),
2. through the full service with 1 Ray worker (`faultlab serve --num-cpus 1`, Redis store,
   gRPC SDK), shards of >= 1 s,
3. resubmitted identically on that coordinator (completes from the content-addressed cache),
4. through the service with 2 Ray workers (a fresh store prefix, so nothing is cached).

Prints, as its last line, one JSON object: ``service_vs_loop`` (service throughput / loop
throughput, target >= 0.9), ``cache_speedup`` (first run / resubmission, target >= 50),
``two_worker_scaling`` (2 workers / 1 worker throughput, target >= 1.7 on 2 cores).
Wall times are measured from submit to SUCCEEDED and include planning and the golden run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def campaign(trials: int, seed: int) -> dict[str, Any]:
    return {
        "kind": "faults",
        "name": "bench-spine",
        "seed": seed,
        "model": {"name": "resnet_small"},
        "dataset": {"name": "digits", "split": "test"},
        "execution": {"shard_seconds": 1.5},
        "faults": {"fault_model": "bitflip", "target": "weight", "sampling": "uniform",
                   "trials": trials},
    }


def run_loop(spec: dict[str, Any]) -> float:
    import torch

    from faultlab.workers.local import run_local

    torch.set_num_threads(1)  # a Ray worker with num_cpus=1 gets one thread too
    # Same warm-up as the service gets: imports, zoo training on first use.
    run_local({**spec, "seed": spec["seed"] + 1000, "faults": {**spec["faults"], "trials": 2}})
    start = time.perf_counter()
    run_local(spec, shard_size=256)
    return time.perf_counter() - start


def run_service(
    store: str, num_cpus: int, spec: dict[str, Any], resubmit: bool
) -> tuple[float, float | None]:
    from faultlab import Client
    from tests.service.cluster import ServeProcess

    server = ServeProcess(store, extra=["--num-cpus", str(num_cpus)])
    try:
        with Client(server.address, timeout=120) as client:
            # Warm the worker pool the way a long-lived coordinator is warm: one tiny campaign.
            client.submit({**spec, "name": "warm-up", "seed": spec["seed"] + 1000,
                           "faults": {**spec["faults"], "trials": 2 * num_cpus}}).wait()
            start = time.perf_counter()
            status = client.submit(spec).wait()
            first = time.perf_counter() - start
            assert status.trials_done == spec["faults"]["trials"], status
            again = None
            if resubmit:
                start = time.perf_counter()
                status = client.submit({**spec, "name": "resubmitted"}).wait()
                again = time.perf_counter() - start
                assert status.trials_cached == spec["faults"]["trials"], status
            return first, again
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    os.environ.setdefault("FAULTLAB_HOME", str(Path.home() / ".cache" / "faultlab"))

    spec = campaign(args.trials, seed=int(time.time()) % 100000)
    loop = run_loop(spec)
    print(f"plain loop: {args.trials} trials in {loop:.1f}s", file=sys.stderr)
    one, cached = run_service(f"{args.redis}?prefix=bench-{uuid.uuid4().hex[:8]}", 1, spec, True)
    print(f"service, 1 worker: {one:.1f}s; resubmission from cache: {cached:.2f}s", file=sys.stderr)
    two, _ = run_service(f"{args.redis}?prefix=bench-{uuid.uuid4().hex[:8]}", 2, spec, False)
    print(f"service, 2 workers: {two:.1f}s", file=sys.stderr)
    assert cached is not None
    print(json.dumps({
        "trials": args.trials,
        "service_vs_loop": round(loop / one, 3),
        "cache_speedup": round(one / cached, 1),
        "two_worker_scaling": round(one / two, 3),
    }))


if __name__ == "__main__":
    main()
