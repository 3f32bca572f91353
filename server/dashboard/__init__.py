"""The live web dashboard, served by the coordinator on its own event loop.

``faultlab serve --dashboard-port P`` (and ``faultlab demo --dashboard``) start it next to
the gRPC server: a campaign list with state and progress, a campaign page with live progress
(server-sent events from the campaign's event log), the report's plots (PNG from the kind's
matplotlib figures) and tables as they fill in, and cancel for the owner. It authenticates
with the coordinator's tokens (an ``Authorization: Bearer`` header or the ``faultlab_token``
cookie, which ``/login?token=...`` sets) and refuses to listen on a non-loopback address
when the coordinator has no tokens. Pages are self-contained: inline CSS and JavaScript,
nothing fetched from the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import uvicorn

from faultlab.errors import ArgumentError
from faultlab.server.auth import Authenticator, is_loopback
from faultlab.server.coordinator import Coordinator
from faultlab.server.dashboard.routes import build_app


@dataclass
class Dashboard:
    """A running dashboard: its uvicorn server and the task serving it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, timeout=5)


async def start_dashboard(
    coordinator: Coordinator, auth: Authenticator, *, host: str = "127.0.0.1", port: int = 0
) -> Dashboard:
    """Serves the dashboard on ``host:port`` (0: a free port) in the running event loop."""
    if not auth.enabled and not is_loopback(host):
        raise ArgumentError(
            "dashboard_host",
            f"{host!r} is not a loopback address: the dashboard needs tokens there "
            "(pass --tokens-file or set FAULTLAB_TOKENS)",
        )
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(build_app(coordinator, auth), log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]),
                                                  name="faultlab-dashboard")
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
        await asyncio.sleep(0.02)
    return Dashboard(server, task, host, sock.getsockname()[1])
