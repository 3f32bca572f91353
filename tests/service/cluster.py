"""Runs `faultlab serve` as a separate process on localhost (the cluster deployment, simulated)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``faultlab serve --port P --store URL`` in its own process (and its own local Ray)."""

    def __init__(self, store: str, port: int | None = None, log: Path | None = None,
                 extra: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "faultlab.client.cli", "serve", "--port", str(self.port),
               "--store", store, "--num-cpus", "2", *(extra or [])]
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                     start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faultlab serve exited with {self.proc.returncode}")
            try:
                with grpc.insecure_channel(self.address) as ch:
                    resp = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            except grpc.RpcError:
                time.sleep(0.3)
        raise TimeoutError("faultlab serve did not become ready")

    def kill9(self) -> None:
        """SIGKILL the whole process group (coordinator and the Ray it started)."""
        import signal

        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            import signal

            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()


def cli(*args: str, address: str | None = None, check: bool = True,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if address:
        env["FAULTLAB_ADDRESS"] = address
    proc = subprocess.run([sys.executable, "-m", "faultlab.client.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"faultlab {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
