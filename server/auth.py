"""Token authentication: the one place where requests are authenticated.

Tokens map to tenants. With no tokens configured the server is open and every request
belongs to the tenant ``default``. Clients send ``authorization: Bearer <token>`` metadata.
Every campaign record has an owner; another tenant's campaign answers NOT_FOUND.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
import yaml

from faultlab.errors import SpecError

DEFAULT_TENANT = "default"
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})


def load_tokens(path: str | None = None, env: str | None = None) -> dict[str, str]:
    """Tokens from a YAML/JSON file ``{token: tenant}`` and/or ``FAULTLAB_TOKENS=tok=tenant,...``."""
    tokens: dict[str, str] = {}
    if path:
        data = yaml.safe_load(Path(path).read_text())
        if not isinstance(data, dict):
            raise SpecError("tokens_file", "must map token -> tenant")
        tokens.update({str(k): str(v) for k, v in data.items()})
    env = env if env is not None else os.environ.get("FAULTLAB_TOKENS", "")
    for item in filter(None, (p.strip() for p in env.split(","))):
        token, sep, tenant = item.partition("=")
        if not sep or not token or not tenant:
            raise SpecError("FAULTLAB_TOKENS", f"entry {item!r} is not token=tenant")
        tokens[token] = tenant
    return tokens


class Authenticator:
    """Maps request metadata to a tenant."""

    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {})

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def tenant(self, metadata: Any) -> str | None:
        """The tenant of a request, or None when authentication fails."""
        if not self.enabled:
            return DEFAULT_TENANT
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                return self.tokens.get(value.removeprefix("Bearer ").strip())
        return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects unauthenticated calls with UNAUTHENTICATED before they reach the servicer."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.auth = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if not self.auth.enabled or method in OPEN_METHODS or method.startswith("/grpc.reflection"):
            return await continuation(handler_call_details)
        if self.auth.tenant(handler_call_details.invocation_metadata) is not None:
            return await continuation(handler_call_details)
        return _deny(await continuation(handler_call_details))


def _deny(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")
        yield  # pragma: no cover - makes this an async generator

    if handler is None:
        return handler
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            stream, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        unary, request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
