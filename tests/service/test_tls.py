"""TLS, the refusal to serve everyone, and constant-time tokens (issue 13, item 10)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faultlab import Client, PermissionDeniedError, UnauthenticatedError, UnavailableError
from faultlab.server.auth import Authenticator, TlsFiles, check_exposure, is_loopback
from tests.service.cluster import cli
from tests.service.specs import fault_spec


def self_signed(folder: Path) -> TlsFiles:
    """A certificate for localhost / 127.0.0.1, signed by itself (its own CA)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return TlsFiles(str(cert), str(key))


class LoopServer:
    """``start_server`` with TLS on a background loop, sharing the session's Ray."""

    def __init__(self, store: str, **kwargs: Any) -> None:
        from faultlab.server.app import start_server

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(
            start_server(store, **kwargs), self.loop).result(timeout=120)
        self.address = f"localhost:{self.running.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.stop(0.5), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def tls_server(ray_session: None, sqlite_url: str, tmp_path: Path) -> Iterator[LoopServer]:
    tls = self_signed(tmp_path)
    server = LoopServer(sqlite_url, tls=tls, tokens={"s3cret": "alice"})
    server.tls = tls  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_tls_round_trip(tls_server: LoopServer) -> None:
    ca = tls_server.tls.cert  # type: ignore[attr-defined]
    with Client(tls_server.address, token="s3cret", ca=ca) as c:
        status = c.submit(fault_spec(trials=4, seed=21)).wait(timeout=120)
        assert status.state.value == "SUCCEEDED" and status.owner == "alice"
        with Client(tls_server.address, token="wrong", ca=ca) as bad, pytest.raises(
                UnauthenticatedError):
            bad.list()
    # Plain text to a TLS port, or TLS without trusting its CA, never connects.
    with Client(tls_server.address, token="s3cret", timeout=1) as plain, pytest.raises(
            UnavailableError):
        plain.list()
    with Client(tls_server.address, token="s3cret", tls=True, timeout=1) as untrusted, \
            pytest.raises(UnavailableError):
        untrusted.list()


def test_cli_talks_tls(tls_server: LoopServer, monkeypatch: pytest.MonkeyPatch) -> None:
    out = cli("list", "--ca", tls_server.tls.cert,  # type: ignore[attr-defined]
              "--token", "s3cret", address=tls_server.address, timeout=60)
    assert out.returncode == 0


def test_public_address_without_tokens_is_refused() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    with pytest.raises(PermissionDeniedError, match="--insecure"):
        check_exposure("0.0.0.0", None, insecure=False)
    check_exposure("0.0.0.0", {"t": "a"}, insecure=False)
    check_exposure("0.0.0.0", None, insecure=True)
    check_exposure("127.0.0.1", None, insecure=False)
    proc = cli("serve", "--host", "0.0.0.0", "--port", "0", check=False, timeout=60)
    assert proc.returncode != 0 and "--insecure" in proc.stderr + proc.stdout


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("faultlab.server.auth.hmac.compare_digest", spy)
    auth = Authenticator({"tok-a": "alice", "tok-b": "bob"})
    assert auth.tenant([("authorization", "Bearer tok-b")]) == "bob"
    assert auth.tenant([("authorization", "Bearer tok-")]) is None
    assert len(calls) == 4  # every token compared, a match or not
