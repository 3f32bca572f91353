"""Building and running a coordinator server: standalone (``faultlab serve``) or embedded.

The embedded server is what ``faultlab.Client()`` with no address uses: an in-process gRPC
server on a free localhost port, a local Ray instance and the SQLite store under
``$FAULTLAB_HOME``, running on its own event loop in a background thread. The SDK then talks
to it over real gRPC, exactly as to a remote coordinator.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from faultlab.server.auth import Authenticator, AuthInterceptor, TlsFiles, check_exposure
from faultlab.server.config import CoordinatorConfig
from faultlab.server.coordinator import Coordinator
from faultlab.server.servicer import FaultlabServicer, add_servicer
from faultlab.server.store import Store, open_store
from faultlab.v1 import faultlab_pb2

if TYPE_CHECKING:
    from faultlab.server.dashboard import Dashboard

log = logging.getLogger("faultlab.server")
SERVICE_NAME = faultlab_pb2.DESCRIPTOR.services_by_name["Faultlab"].full_name


@dataclass
class RunningServer:
    server: grpc.aio.Server
    coordinator: Coordinator
    port: int
    health: health.aio.HealthServicer
    dashboard: Dashboard | None = None

    async def stop(self, grace: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        if self.dashboard is not None:
            await self.dashboard.stop()
        await self.server.stop(grace)  # no new calls; in-flight ones get ``grace`` seconds
        await self.coordinator.shutdown()  # running campaigns stay RUNNING: parked
        self.coordinator.close()


async def start_server(
    store: Store | str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config: CoordinatorConfig | None = None,
    tokens: dict[str, str] | None = None,
    reflection: bool = False,
    dashboard_port: int | None = None,
    tls: TlsFiles | None = None,
    insecure: bool = False,
) -> RunningServer:
    """Recovers unfinished campaigns, then starts serving. Returns the bound port.

    ``dashboard_port`` (0: a free one) also serves the web dashboard on ``host``. ``tls``
    serves over TLS; a non-loopback ``host`` without ``tokens`` is refused unless
    ``insecure``."""
    check_exposure(host, tokens, insecure)
    credentials = tls.credentials() if tls else None  # unreadable files fail before Ray
    if isinstance(store, str):
        store = open_store(store)
    store.ping()
    coordinator = Coordinator(store, config)
    await coordinator.claim_store()  # one coordinator per store: refuses while another holds it
    await asyncio.to_thread(coordinator.start_ray)
    resumed = await coordinator.recover()  # before any new submission is accepted
    if resumed:
        log.info("resumed %d unfinished campaigns: %s", len(resumed), ", ".join(resumed))
    auth = Authenticator(tokens)
    server = grpc.aio.server(
        interceptors=[AuthInterceptor(auth)],
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024)],
    )
    add_servicer(FaultlabServicer(coordinator), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if reflection:
        from grpc_reflection.v1alpha import reflection as grpc_reflection

        grpc_reflection.enable_server_reflection(
            [SERVICE_NAME, health.SERVICE_NAME, grpc_reflection.SERVICE_NAME], server
        )
    address = f"{host}:{port}"
    bound = (server.add_secure_port(address, credentials) if credentials
             else server.add_insecure_port(address))
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    dashboard = None
    if dashboard_port is not None:
        from faultlab.server.dashboard import start_dashboard

        dashboard = await start_dashboard(coordinator, auth, host=host, port=dashboard_port)
    return RunningServer(server, coordinator, bound, health_servicer, dashboard)


class EmbeddedServer:
    """A coordinator on a background event loop in this process (``Client()``'s default)."""

    def __init__(
        self,
        store_url: str,
        *,
        num_cpus: int | None = None,
        config: CoordinatorConfig | None = None,
        tokens: dict[str, str] | None = None,
        dashboard_port: int | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultlab-embedded",
                                        daemon=True)
        self._thread.start()
        config = config or CoordinatorConfig(num_cpus=num_cpus)
        future: Future[RunningServer] = asyncio.run_coroutine_threadsafe(
            start_server(store_url, config=config, tokens=tokens,
                         dashboard_port=dashboard_port), self._loop
        )
        self.running = future.result(timeout=300)
        self.address = f"127.0.0.1:{self.running.port}"

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.running.stop(0.5), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
