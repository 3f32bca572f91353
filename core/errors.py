"""The one exception tree of faultlab, shared by SDK, coordinator and engines.

::

    FaultlabError               base; ``code`` names the gRPC status it maps to
    ├── SpecError               INVALID_ARGUMENT: a spec field is wrong (field, problem, allowed)
    ├── ArgumentError           INVALID_ARGUMENT: a request argument that is no spec field
    │                           (page token, event cursor, tokens file, store URL)
    ├── NotFoundError           NOT_FOUND: unknown campaign / trial id (or another tenant's)
    ├── UnauthenticatedError    UNAUTHENTICATED: missing or invalid token
    ├── UnavailableError        UNAVAILABLE: store or coordinator unreachable
    ├── ResourceExhaustedError  RESOURCE_EXHAUSTED: a per-tenant or per-campaign limit
    ├── PermissionDeniedError   PERMISSION_DENIED: the operator does not allow it (a factory)
    ├── FailedPreconditionError FAILED_PRECONDITION: e.g. results of a campaign not finished
    ├── CampaignFailedError     the campaign ended FAILED (raised by ``CampaignHandle.wait``)
    └── CampaignCancelledError  the campaign ended CANCELLED (raised by ``CampaignHandle.wait``)

``code`` is a plain status name (``"INVALID_ARGUMENT"``), so this module imports no grpc: a Ray
worker that raises a SpecError loads nothing of the RPC stack. The coordinator maps names to
``grpc.StatusCode`` in one place (``faultlab.server.wire``) and sends :meth:`FaultlabError.wire`
with the status; the SDK rebuilds the same exception, data included, with :func:`error_from_wire`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any


class FaultlabError(Exception):
    """Base of every faultlab error."""

    code: str = "UNKNOWN"
    """Name of the gRPC status this error travels as (a ``grpc.StatusCode`` member name)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def data(self) -> dict[str, Any]:
        """The structured fields a caller needs, beyond the message (sent over the wire)."""
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other arguments than ``args``: pickle (Ray) the attributes instead,
        # so that an error raised on a worker reaches the coordinator as itself.
        return (_restore, (type(self), self.message, dict(self.__dict__)))

    def wire(self) -> dict[str, Any]:
        """``{"type", "message", "data"}``: what the coordinator sends next to the status."""
        return {"type": type(self).__name__, "message": self.message, "data": self.data()}


class SpecError(FaultlabError):
    """A campaign spec field is invalid. ``field`` is its dotted path, e.g. ``faults.bits``."""

    code = "INVALID_ARGUMENT"

    def __init__(
        self, field: str, problem: str, allowed: Iterable[object] | str | None = None
    ) -> None:
        self.field = field
        self.problem = problem
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        text = f"{field}: {problem}"
        if allowed:
            text += did_you_mean(field, problem, allowed) + f" (allowed: {allowed})"
        super().__init__(text)

    def data(self) -> dict[str, Any]:
        return {"field": self.field, "problem": self.problem, "allowed": self.allowed}


def did_you_mean(field: str, problem: str, allowed: str) -> str:
    """``"; did you mean 'x'?"`` for the closest allowed value to what the problem quotes (or
    to the field's own name for an unknown field), or ``""``."""
    choices = [c.strip().strip("'") for c in re.split(r",| or ", allowed) if c.strip()]
    quoted = re.findall(r"'([^']{1,60})'", problem)
    value = quoted[0] if quoted else field.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close and value not in choices else ""


class ArgumentError(FaultlabError):
    """A request argument that is not part of a spec is invalid: a page token, an event cursor,
    a tokens file, a store URL. ``argument`` names it."""

    code = "INVALID_ARGUMENT"

    def __init__(
        self, argument: str, problem: str, allowed: Iterable[object] | str | None = None
    ) -> None:
        self.argument = argument
        self.problem = problem
        if allowed is not None and not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        self.allowed = allowed
        text = f"{argument}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)

    def data(self) -> dict[str, Any]:
        return {"argument": self.argument, "problem": self.problem, "allowed": self.allowed}


class NotFoundError(FaultlabError):
    """No ``what`` (``campaign``, ``trial``) with id ``id`` is visible to the caller."""

    code = "NOT_FOUND"

    def __init__(self, what: str, id: str, problem: str = "not found") -> None:
        self.what = what
        self.id = id
        self.problem = problem
        super().__init__(f"{what} {id!r} {problem}" if id else problem)

    def data(self) -> dict[str, Any]:
        return {"what": self.what, "id": self.id, "problem": self.problem}


class UnauthenticatedError(FaultlabError):
    code = "UNAUTHENTICATED"


class UnavailableError(FaultlabError):
    code = "UNAVAILABLE"


class ResourceExhaustedError(FaultlabError):
    code = "RESOURCE_EXHAUSTED"


class PermissionDeniedError(FaultlabError):
    """The caller may not do this on this coordinator: e.g. a ``factory`` whose module the
    operator did not allow (``faultlab serve --allow-factory MODULE``)."""

    code = "PERMISSION_DENIED"


class FailedPreconditionError(FaultlabError):
    code = "FAILED_PRECONDITION"


class CampaignFailedError(FaultlabError):
    """Raised by ``CampaignHandle.wait`` when the campaign ended FAILED."""

    def __init__(self, campaign_id: str, reason: str) -> None:
        self.campaign_id = campaign_id
        self.reason = reason
        super().__init__(f"campaign {campaign_id} failed: {reason}")


class CampaignCancelledError(FaultlabError):
    """Raised by ``CampaignHandle.wait`` when the campaign ended CANCELLED."""

    def __init__(self, campaign_id: str) -> None:
        self.campaign_id = campaign_id
        super().__init__(f"campaign {campaign_id} was cancelled")


def _restore(cls: type[FaultlabError], message: str, state: dict[str, Any]) -> FaultlabError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


_PLAIN: dict[str, type[FaultlabError]] = {
    cls.code: cls
    for cls in (
        UnauthenticatedError,
        UnavailableError,
        ResourceExhaustedError,
        PermissionDeniedError,
        FailedPreconditionError,
    )
}


def _rebuilt(wire: Mapping[str, Any]) -> FaultlabError | None:
    """The exception a :meth:`FaultlabError.wire` blob describes, or None if it is unknown."""
    data = wire.get("data") or {}
    kind = wire.get("type")
    try:
        if kind == "SpecError":
            return SpecError(data["field"], data["problem"], data.get("allowed"))
        if kind == "ArgumentError":
            return ArgumentError(data["argument"], data["problem"], data.get("allowed"))
        if kind == "NotFoundError":
            return NotFoundError(data["what"], data["id"], data.get("problem", "not found"))
    except (KeyError, TypeError):
        return None
    return None


def error_from_wire(
    code: str, details: str, wire: Mapping[str, Any] | None = None
) -> FaultlabError:
    """The SDK side of the mapping: a status name, its details and the optional structured
    blob back into the matching exception."""
    rebuilt = _rebuilt(wire) if wire else None
    if rebuilt is not None and rebuilt.code == code:
        return rebuilt
    if code == "INVALID_ARGUMENT":  # no blob (another server): keep the field from the text
        field, _, problem = details.partition(": ")
        return SpecError(field, problem) if problem else ArgumentError("request", details)
    if code == "NOT_FOUND":
        return NotFoundError("object", "", details)  # the message is the details as sent
    cls = _PLAIN.get(code)
    if cls is None:
        other = FaultlabError(f"{code}: {details}")
        other.code = code
        return other
    return cls(details)
