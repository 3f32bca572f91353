"""The one exception tree of faultlab, shared by SDK, coordinator and engines.

::

    FaultlabError                      base; carries the gRPC status it maps to
    ├── SpecError                      INVALID_ARGUMENT: a spec field is wrong (names field + allowed values)
    ├── NotFoundError                  NOT_FOUND: unknown campaign / trial id (or another tenant's)
    ├── UnauthenticatedError           UNAUTHENTICATED: missing or invalid token
    ├── UnavailableError               UNAVAILABLE: store or coordinator unreachable
    ├── ResourceExhaustedError         RESOURCE_EXHAUSTED: a per-tenant or per-campaign limit
    ├── FailedPreconditionError        FAILED_PRECONDITION: e.g. results of a campaign not finished
    ├── CampaignFailedError            the campaign ended FAILED (raised by ``CampaignHandle.wait``)
    └── CampaignCancelledError         the campaign ended CANCELLED (raised by ``CampaignHandle.wait``)

The coordinator turns these into gRPC statuses at one place; the SDK turns statuses back into
the same classes, so callers catch meaning, not ``grpc.RpcError``.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc


class FaultlabError(Exception):
    """Base of every faultlab error."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SpecError(FaultlabError):
    """A campaign spec field is invalid. ``field`` is its dotted path, e.g. ``faults.bits``."""

    code = grpc.StatusCode.INVALID_ARGUMENT

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
            text += f" (allowed: {allowed})"
        super().__init__(text)


class NotFoundError(FaultlabError):
    code = grpc.StatusCode.NOT_FOUND


class UnauthenticatedError(FaultlabError):
    code = grpc.StatusCode.UNAUTHENTICATED


class UnavailableError(FaultlabError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhaustedError(FaultlabError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(FaultlabError):
    code = grpc.StatusCode.FAILED_PRECONDITION


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


_BY_CODE: dict[grpc.StatusCode, type[FaultlabError]] = {
    cls.code: cls
    for cls in (
        SpecError,
        NotFoundError,
        UnauthenticatedError,
        UnavailableError,
        ResourceExhaustedError,
        FailedPreconditionError,
    )
}


def error_from_status(code: grpc.StatusCode, details: str) -> FaultlabError:
    """The SDK side of the mapping: a gRPC status back into the matching exception."""
    cls = _BY_CODE.get(code)
    if cls is SpecError:
        field, _, problem = details.partition(": ")
        spec_error = SpecError.__new__(SpecError)
        FaultlabError.__init__(spec_error, details)
        spec_error.field, spec_error.problem, spec_error.allowed = field, problem, None
        return spec_error
    if cls is None:
        other = FaultlabError(f"{code.name}: {details}")
        other.code = code
        return other
    return cls(details)
