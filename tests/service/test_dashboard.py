"""The web dashboard: token enforcement over HTTP, and the pages in a real headless Chromium
(the campaign list, a live progress update while a campaign runs, a rendered plot)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultlab.errors import ArgumentError
from tests.marks import needs_chromium
from tests.service.specs import fault_spec

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


@pytest.fixture(scope="module")
def served(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from faultlab.server.app import EmbeddedServer

    db = tmp_path_factory.mktemp("dashboard") / "faultlab.db"
    server = EmbeddedServer(f"sqlite://{db}", tokens=TOKENS, dashboard_port=0)
    yield server
    server.stop()


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_tokens_are_enforced_and_tenants_kept_apart(served: Any) -> None:
    from faultlab.client import Client

    base = served.running.dashboard.url
    job = Client(served.address, token="tok-alice").submit(
        fault_spec(trials=24, size=16, name="dash-auth"))
    for path in ("", "api/campaigns", f"campaigns/{job.id}", f"api/campaigns/{job.id}"):
        assert _get(base + path)[0] == 401, path
        assert _get(base + path, "not-a-token")[0] == 401, path
    status, body = _get(base + "api/campaigns", "tok-alice")
    assert status == 200 and job.id in {c["id"] for c in json.loads(body)}
    assert json.loads(_get(base + "api/campaigns", "tok-bob")[1]) == []
    assert _get(base + f"api/campaigns/{job.id}", "tok-bob")[0] == 404
    assert _get(base + f"api/campaigns/{job.id}/cancel", "tok-bob", "POST")[0] == 404
    status, body = _get(base + f"api/campaigns/{job.id}/cancel", "tok-alice", "POST")
    assert status == 200 and json.loads(body)["terminal"]
    assert _get(base + "login?token=wrong")[0] == 401


def test_refuses_an_open_network_address() -> None:
    import asyncio

    from faultlab.server.auth import Authenticator
    from faultlab.server.dashboard import start_dashboard

    with pytest.raises(ArgumentError, match="needs tokens"):
        asyncio.run(start_dashboard(None, Authenticator({}), host="0.0.0.0"))  # type: ignore[arg-type]


@needs_chromium
def test_pages_in_headless_chromium(served: Any) -> None:
    from faultlab.client import Client
    from tests.service.cdp import Browser

    base = served.running.dashboard.url
    job = Client(served.address, token="tok-alice").submit(
        fault_spec(trials=20000, size=32, name="dash-live", seed=11))  # runs for seconds
    browser = Browser(width=1400, height=1000)
    try:
        browser.call("Page.navigate", url=f"{base}login?token=tok-alice")
        browser.wait_for("location.pathname === '/' && document.readyState === 'complete'")
        browser.wait_for(f"!!document.querySelector('tr[data-id=\"{job.id}\"]')")
        assert "dash-live" in browser.evaluate("document.getElementById('rows').innerText")

        browser.goto(f"{base}campaigns/{job.id}")
        first = browser.evaluate("document.getElementById('progress-text').textContent")
        assert first.split("/")[0] != "20000", "the campaign ended before the page loaded"
        # A live update: the counter moves while the page stays loaded.
        browser.wait_for(f"document.getElementById('progress-text').textContent !== {first!r}"
                         " && document.getElementById('state').textContent === 'RUNNING'",
                         timeout=30)
        browser.wait_for("document.getElementById('state').textContent === 'SUCCEEDED'",
                         timeout=60)
        width = browser.wait_for(
            "(() => { const i = document.querySelector('img.plot');"
            " return i && i.complete ? i.naturalWidth : 0; })()", timeout=30)
        assert width > 100
        assert browser.evaluate("document.getElementById('cancel').style.display") == "none"
        shot = os.environ.get("FAULTLAB_DASHBOARD_SCREENSHOT")
        if shot:  # docs/img/dashboard.png is made this way
            time.sleep(1.0)
            browser.screenshot(Path(shot))
    finally:
        browser.close()
