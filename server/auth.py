"""Token authentication: the one place where requests are authenticated.

Tokens map to tenants. With no tokens configured the server is open and every request
belongs to the tenant ``default``. Clients send ``authorization: Bearer <token>`` metadata.
:class:`AuthInterceptor` authenticates each call once and hands the tenant to the handler
through :func:`current_tenant`; a call without a valid token never reaches the servicer.
Every campaign record has an owner; another tenant's campaign answers NOT_FOUND.
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

from faultlab.errors import ArgumentError, PermissionDeniedError, UnauthenticatedError
from faultlab.server.wire import abort

DEFAULT_TENANT = "default"
RESERVED_TENANT = "faultlab:result-cache"  # owner of the result cache's blob copies
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

# Each RPC runs in its own asyncio task, hence its own copy of the context: a tenant set for
# one call is never seen by another.
_TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("faultlab_tenant")


def load_tokens(path: str | None = None, env: str | None = None) -> dict[str, str]:
    """Tokens from a YAML/JSON file ``{token: tenant}`` and/or ``FAULTLAB_TOKENS=tok=ten,...``."""
    tokens: dict[str, str] = {}
    if path:
        data = yaml.safe_load(Path(path).read_text())
        if not isinstance(data, dict):
            raise ArgumentError("tokens_file", "must map token -> tenant")
        tokens.update({str(k): str(v) for k, v in data.items()})
    env = env if env is not None else os.environ.get("FAULTLAB_TOKENS", "")
    for item in filter(None, (p.strip() for p in env.split(","))):
        token, sep, tenant = item.partition("=")
        if not sep or not token or not tenant:
            raise ArgumentError("FAULTLAB_TOKENS", f"entry {item!r} is not token=tenant")
        tokens[token] = tenant
    return tokens


@dataclass(frozen=True)
class TlsFiles:
    """PEM certificate chain and private key the server presents (``--tls-cert/--tls-key``)."""

    cert: str
    key: str

    def credentials(self) -> grpc.ServerCredentials:
        pair = (Path(self.key).read_bytes(), Path(self.cert).read_bytes())
        return grpc.ssl_server_credentials([pair])


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(host: str, tokens: Mapping[str, str] | None, insecure: bool) -> None:
    """Refuses to serve a non-loopback address to everyone (no tokens) unless ``insecure``."""
    if not tokens and not insecure and not is_loopback(host):
        raise PermissionDeniedError(
            f"refusing to serve {host} without tokens: anyone who reaches it could run "
            "campaigns; pass --tokens-file (or FAULTLAB_TOKENS), or --insecure"
        )


def current_tenant() -> str:
    """The tenant the interceptor authenticated for the RPC being handled."""
    tenant = _TENANT.get(None)
    if tenant is None:  # a server assembled without AuthInterceptor
        raise UnauthenticatedError("missing or invalid token")
    return tenant


class Authenticator:
    """Maps request metadata to a tenant."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {})
        if RESERVED_TENANT in self.tokens.values():
            raise ArgumentError("tokens", f"the tenant name {RESERVED_TENANT!r} is reserved")
        self._encoded = [(token.encode(), tenant) for token, tenant in self.tokens.items()]

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def tenant(self, metadata: Any) -> str | None:
        """The tenant of a request, or None when authentication fails."""
        if not self.enabled:
            return DEFAULT_TENANT
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                return self._match(value.removeprefix("Bearer ").strip().encode())
        return None

    def _match(self, offered: bytes) -> str | None:
        """The tenant of ``offered``: every token is compared in constant time, so the time
        taken tells nothing about how much of a token matched."""
        found = None
        for token, tenant in self._encoded:
            if hmac.compare_digest(offered, token):
                found = tenant
        return found


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call once: rejects it with UNAUTHENTICATED, or runs its handler
    with the tenant set for :func:`current_tenant`."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.auth = authenticator

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        if method in OPEN_METHODS or method.startswith("/grpc.reflection") or handler is None:
            return handler
        tenant = self.auth.tenant(handler_call_details.invocation_metadata)
        if tenant is None:
            return _deny(handler)
        # grpc.aio runs the interceptors and then the handler in the RPC's own task, so the
        # tenant set here is the handler's (and no other RPC's): an event stream's messages
        # pass through no extra generator layer.
        _TENANT.set(tenant)
        return handler


def _deny(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await abort(context, UnauthenticatedError("missing or invalid token"))

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await abort(context, UnauthenticatedError("missing or invalid token"))
        yield  # pragma: no cover - makes this an async generator

    serializers = {"request_deserializer": handler.request_deserializer,
                   "response_serializer": handler.response_serializer}
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(stream, **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **serializers)
    return grpc.unary_unary_rpc_method_handler(unary, **serializers)
