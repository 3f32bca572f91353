"""The dashboard's HTTP routes (a Starlette app calling the coordinator in-process)."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from faultlab.errors import FaultlabError, NotFoundError
from faultlab.report import Report
from faultlab.server.auth import Authenticator
from faultlab.server.caches import LruCache
from faultlab.server.coordinator import Coordinator
from faultlab.server.dashboard.pages import campaign_page, list_page, login_page
from faultlab.server.store import CampaignRecord

COOKIE = "faultlab_token"
STATUS = {"NOT_FOUND": 404, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
          "FAILED_PRECONDITION": 409, "UNAVAILABLE": 503}
_PLOT_LOCK = threading.Lock()  # pyplot keeps global state: one figure set at a time


class Unauthorized(Exception):
    """The request carries no valid token."""


def record_dict(record: CampaignRecord) -> dict[str, Any]:
    total = record.trials_total
    return {"id": record.id, "name": record.name, "kind": record.kind,
            "state": record.state.value, "owner": record.owner, "trials_total": total,
            "trials_done": record.trials_done, "trials_cached": record.trials_cached,
            "trials_failed": record.trials_failed, "error": record.error,
            "progress": record.trials_done / total if total else 0.0,
            "created_at": record.created_at, "terminal": record.state.is_terminal()}


def render_plots(report: Report) -> dict[str, bytes]:
    """The kind's figures as PNG bytes (the same figures ``Report.save_plots`` writes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from faultlab.kinds import plots_function

    pngs: dict[str, bytes] = {}
    with _PLOT_LOCK:
        for name, fig in plots_function(report.kind)(report).items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            plt.close(fig)
            pngs[name] = buf.getvalue()
    return pngs


class DashboardRoutes:
    """Handlers; each one authenticates and reads as the request's tenant."""

    def __init__(self, coordinator: Coordinator, auth: Authenticator) -> None:
        self.co = coordinator
        self.auth = auth
        self.plots: LruCache[tuple[str, int, str], dict[str, bytes]] = LruCache(32)

    def tenant(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        token = request.cookies.get(COOKIE, "")
        metadata = [("authorization", header if header else f"Bearer {token}")]
        tenant = self.auth.tenant(metadata)
        if tenant is None:
            raise Unauthorized
        return tenant

    async def index(self, request: Request) -> Response:
        self.tenant(request)
        return HTMLResponse(list_page())

    async def login(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        if not token:
            return HTMLResponse(login_page())
        if self.auth.tenant([("authorization", f"Bearer {token}")]) is None:
            return HTMLResponse(login_page("invalid token"), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    async def campaigns(self, request: Request) -> Response:
        records = await self.co.list_campaigns(self.tenant(request), 200, 0)
        return JSONResponse([record_dict(r) for r in records])

    async def campaign(self, request: Request) -> Response:
        record = await self.co.get(self.tenant(request), request.path_params["id"])
        return HTMLResponse(campaign_page(record_dict(record)))

    async def campaign_json(self, request: Request) -> Response:
        record = await self.co.get(self.tenant(request), request.path_params["id"])
        data = record_dict(record)
        data["plots"] = sorted(await self._plots(record)) if record.meta_json else []
        return JSONResponse(data)

    async def _plots(self, record: CampaignRecord) -> dict[str, bytes]:
        key = (record.id, record.trials_done, record.state.value)
        pngs = self.plots.get(key)
        if pngs is None:
            report = await self.co.report(record.owner, record.id)
            pngs = await asyncio.to_thread(render_plots, report)
            self.plots.put(key, pngs)
        return pngs

    async def plot(self, request: Request) -> Response:
        record = await self.co.get(self.tenant(request), request.path_params["id"])
        name = request.path_params["name"]
        png = (await self._plots(record)).get(name) if record.meta_json else None
        if png is None:
            raise NotFoundError("plot", name)
        return Response(png, media_type="image/png", headers={"cache-control": "no-store"})

    async def report(self, request: Request) -> Response:
        report = await self.co.report(self.tenant(request), request.path_params["id"])
        return HTMLResponse(report.to_html())

    async def cancel(self, request: Request) -> Response:
        record = await self.co.cancel(self.tenant(request), request.path_params["id"])
        return JSONResponse(record_dict(record))

    async def events(self, request: Request) -> Response:
        tenant = self.tenant(request)
        campaign_id = request.path_params["id"]
        await self.co.get(tenant, campaign_id)  # 404 before the stream starts
        return StreamingResponse(self._sse(tenant, campaign_id), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def _sse(self, tenant: str, campaign_id: str) -> AsyncIterator[str]:
        """State and progress events as server-sent events, then the final counters."""
        cursor = ""
        while True:
            terminal, events = await self.co.read_events(tenant, campaign_id, cursor, 500)
            for event in events:
                cursor = event.cursor
                data = event.event.to_dict()
                if data["type"] in {"state", "progress"}:
                    yield f"data: {json.dumps(data)}\n\n"
            if terminal and not events:
                record = await self.co.get(tenant, campaign_id)
                yield f"event: end\ndata: {json.dumps(record_dict(record))}\n\n"
                return
            if not events:
                yield ": keep-alive\n\n"


async def _unauthorized(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "missing or invalid token"}, status_code=401)
    return HTMLResponse(login_page("missing or invalid token"), status_code=401)


async def _faultlab_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FaultlabError)
    return JSONResponse({"error": exc.message, "code": exc.code},
                        status_code=STATUS.get(exc.code, 400))


def build_app(coordinator: Coordinator, auth: Authenticator) -> Starlette:
    r = DashboardRoutes(coordinator, auth)
    routes = [
        Route("/", r.index), Route("/login", r.login),
        Route("/healthz", lambda _: JSONResponse({"ok": True})),
        Route("/campaigns/{id}", r.campaign), Route("/campaigns/{id}/report", r.report),
        Route("/api/campaigns", r.campaigns), Route("/api/campaigns/{id}", r.campaign_json),
        Route("/api/campaigns/{id}/events", r.events),
        Route("/api/campaigns/{id}/plots/{name}.png", r.plot),
        Route("/api/campaigns/{id}/cancel", r.cancel, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={Unauthorized: _unauthorized,
                                                        FaultlabError: _faultlab_error})
