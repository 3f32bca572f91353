"""The one place where faultlab errors become gRPC statuses.

An error's ``code`` names its status (``"INVALID_ARGUMENT"``); :func:`abort` maps it to
``grpc.StatusCode`` and sends :meth:`~faultlab.errors.FaultlabError.wire` as JSON in the
``faultlab-error-bin`` trailing metadata, so the SDK re-raises the same exception with its
data (a SpecError's field, problem and allowed values; a NotFoundError's id). Anything
unexpected is logged with its traceback on the server and answered INTERNAL with a one-line
message, never a traceback on the wire.
"""

from __future__ import annotations

import json
import logging
from typing import NoReturn

import grpc

from faultlab.errors import FaultlabError, ResourceExhaustedError, SpecError
from faultlab.server.edge import safe_data, safe_text

ERROR_METADATA_KEY = "faultlab-error-bin"
"""Trailing metadata key of the JSON error blob (``-bin``: gRPC sends it as bytes)."""

log = logging.getLogger("faultlab.servicer")


def status_code(error: FaultlabError) -> grpc.StatusCode:
    """The gRPC status an error's ``code`` names (UNKNOWN for a name grpc does not know)."""
    return grpc.StatusCode.__members__.get(error.code, grpc.StatusCode.UNKNOWN)


def as_faultlab(exc: BaseException) -> BaseException:
    """Bad input that surfaced as a Python error, as the faultlab error it stands for."""
    if isinstance(exc, RecursionError):
        return SpecError("spec", "nested too deeply")
    if isinstance(exc, MemoryError):
        return ResourceExhaustedError("the request needs more memory than the coordinator has")
    return exc


def error_blob(exc: FaultlabError) -> bytes:
    """The ``faultlab-error-bin`` value: the error's wire data, every string bounded."""
    wire = exc.wire()
    wire["message"] = safe_text(exc.message)
    wire["data"] = safe_data(wire.get("data") or {})
    return json.dumps(wire).encode()


async def abort(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """Ends the RPC with the status of ``exc`` (raises ``grpc.aio.AbortError``). The message
    is always one bounded line of valid UTF-8 (:func:`~faultlab.server.edge.safe_text`)."""
    exc = as_faultlab(exc)
    if isinstance(exc, FaultlabError):
        code = status_code(exc)
        if code is not grpc.StatusCode.UNKNOWN:
            blob = error_blob(exc)
            await context.abort(code, safe_text(exc.message), ((ERROR_METADATA_KEY, blob),))
    log.exception("unexpected error in RPC", exc_info=exc)
    message = exc.message if isinstance(exc, FaultlabError) else f"{type(exc).__name__}: {exc}"
    await context.abort(grpc.StatusCode.INTERNAL, safe_text(message) or "internal error")
