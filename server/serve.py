"""``faultlab serve``: one coordinator process, from start to a clean exit.

SIGTERM (or SIGINT) drains: the health check turns NOT_SERVING, the gRPC server stops
accepting calls (in-flight ones get a grace period), every running campaign's task is
stopped with its campaign left RUNNING in the store — parked: the next coordinator on the
store resumes it, computing only missing trials — and Ray is shut down, which stops every
process the local Ray instance started (raylet, GCS, dashboard and runtime-env agents, workers).

A ``kill -9`` can do none of that. Ray's processes then outlive the coordinator, so each start
records the processes of its local Ray instance in ``$FAULTLAB_HOME/ray-processes-<pid>.json``;
the next start stops those still running whose coordinator is gone (see docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faultlab.paths import faultlab_home
from faultlab.server.app import RunningServer, start_server

log = logging.getLogger("faultlab.server")

PROCESS_FILES = "ray-processes-*.json"
"""One file per coordinator process (``ray-processes-<pid>.json``) under ``$FAULTLAB_HOME``."""


def _process_file(home: Path | None = None, pid: int | None = None) -> Path:
    return (home or faultlab_home()) / PROCESS_FILES.replace("*", str(pid or os.getpid()))


def _ray_processes() -> list[dict[str, Any]]:
    import psutil

    me = psutil.Process()
    return [{"pid": p.pid, "created": p.create_time()}
            for p in me.children(recursive=True)]


def record_ray_processes(home: Path | None = None) -> None:
    """Writes this coordinator's pid and its Ray processes, for the next start's cleanup."""
    import psutil

    path = _process_file(home)
    owner = {"pid": os.getpid(), "created": psutil.Process().create_time()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"owner": owner, "processes": _ray_processes()}))


def _alive(entry: dict[str, Any]) -> Any:
    import psutil

    try:
        process = psutil.Process(int(entry["pid"]))
        return process if abs(process.create_time() - float(entry["created"])) < 1 else None
    except (psutil.Error, KeyError, TypeError, ValueError):
        return None


def clean_stale_ray(home: Path | None = None) -> int:
    """Stops the Ray processes killed coordinators left behind; returns how many."""
    stale = 0
    for path in sorted((home or faultlab_home()).glob(PROCESS_FILES)):
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(recorded, dict) and _alive(recorded.get("owner") or {}) is None:
            stale += _stop(recorded.get("processes") or [])  # its coordinator is gone
            path.unlink(missing_ok=True)
    if stale:
        log.warning("stopped %d Ray processes left by a killed coordinator", stale)
    return stale


def _stop(entries: list[dict[str, Any]]) -> int:
    import psutil

    stale = [p for p in map(_alive, entries) if p is not None]
    for process in stale:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, survivors = psutil.wait_procs(stale, timeout=5)
    for process in survivors:
        with contextlib.suppress(psutil.Error):
            process.kill()
    return len(stale)


async def drain(running: RunningServer, grace: float = 5.0) -> list[str]:
    """Stops serving and parks the running campaigns; returns their ids."""
    parked = sorted(running.coordinator.active_ids())
    await running.stop(grace)
    if parked:
        log.info("parked %d running campaigns for recovery: %s", len(parked), ", ".join(parked))
    return parked


def _shutdown_ray(local: bool) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if local:
        _process_file().unlink(missing_ok=True)


def _on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def _serve(on_ready: Callable[[RunningServer], None], **kwargs: Any) -> None:
    stop = asyncio.Event()
    _on_signals(stop)
    local = kwargs["config"].ray_address is None
    try:
        running = await start_server(**kwargs)
        _on_signals(stop)  # again: Ray's core worker installed its own (a native stack dump)
        if local:
            await asyncio.to_thread(record_ray_processes)
        # What start-up built (torch, Ray, the engines: ~500k objects) lives as long as the
        # process: frozen, a full collection no longer walks it (0.5 s of the event loop
        # once every few campaigns, each a latency spike for every stream, before; 0.02 s now).
        gc.freeze()
        on_ready(running)
        await stop.wait()
        log.info("stopping: draining requests and parking running campaigns")
        await drain(running)
    finally:
        await asyncio.to_thread(_shutdown_ray, local)


def serve(on_ready: Callable[[RunningServer], None], **kwargs: Any) -> int:
    """Runs :func:`~faultlab.server.app.start_server` with ``kwargs`` until SIGTERM/SIGINT,
    then drains and exits 0. ``on_ready`` runs once the server is serving."""
    if kwargs["config"].ray_address is None:
        clean_stale_ray()
    asyncio.run(_serve(on_ready, **kwargs))
    return 0
