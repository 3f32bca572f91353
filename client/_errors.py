"""gRPC failures back into the exceptions of :mod:`faultlab.errors`, data included.

The coordinator sends each error's structured data as JSON in the ``faultlab-error-bin``
trailing metadata (see ``faultlab.server.wire``); :func:`translate` reads it, so a SpecError
comes back with its field, problem and allowed values and a NotFoundError with its id.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from faultlab.errors import FaultlabError, UnavailableError, error_from_wire

ERROR_METADATA_KEY = "faultlab-error-bin"


def _wire(exc: grpc.RpcError) -> dict[str, Any] | None:
    trailing = getattr(exc, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == ERROR_METADATA_KEY:
            try:
                blob = json.loads(value)
            except ValueError:
                return None
            return blob if isinstance(blob, dict) else None
    return None


def translate(exc: grpc.RpcError, address: str) -> FaultlabError:
    """The faultlab exception a failed call stands for."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details.lower():
        details = f"coordinator at {address} is unreachable ({details})"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UnavailableError(f"coordinator at {address} did not answer in time")
    return error_from_wire(code.name, details, _wire(exc))
