"""Errors carry a plain status name and their data; the server maps names to gRPC codes."""

from __future__ import annotations

import grpc
import pytest

from faultlab.errors import (
    ArgumentError,
    FailedPreconditionError,
    FaultlabError,
    NotFoundError,
    ResourceExhaustedError,
    SpecError,
    UnauthenticatedError,
    UnavailableError,
    error_from_wire,
)
from faultlab.server.wire import status_code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SpecError("faults.bits", "too high", [0, 31]), grpc.StatusCode.INVALID_ARGUMENT),
        (ArgumentError("page_token", "invalid"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotFoundError("campaign", "c1"), grpc.StatusCode.NOT_FOUND),
        (UnauthenticatedError("no token"), grpc.StatusCode.UNAUTHENTICATED),
        (UnavailableError("down"), grpc.StatusCode.UNAVAILABLE),
        (ResourceExhaustedError("limit"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (FailedPreconditionError("not yet"), grpc.StatusCode.FAILED_PRECONDITION),
        (FaultlabError("other"), grpc.StatusCode.UNKNOWN),
    ],
)
def test_status_names_map_to_grpc_codes(error: FaultlabError, code: grpc.StatusCode) -> None:
    assert isinstance(error.code, str)
    assert status_code(error) is code


def test_spec_error_round_trips_with_its_allowed_values() -> None:
    sent = SpecError("faults.layers", "unknown layer 'conv9'", ["conv1", "conv2"])
    back = error_from_wire(sent.code, sent.message, sent.wire())
    assert type(back) is SpecError
    assert (back.field, back.problem, back.allowed) == (
        "faults.layers", "unknown layer 'conv9'", "conv1, conv2"
    )
    assert back.message == sent.message


def test_not_found_and_argument_errors_round_trip_with_their_data() -> None:
    missing = NotFoundError("campaign", "deadbeef")
    back = error_from_wire(missing.code, missing.message, missing.wire())
    assert isinstance(back, NotFoundError)
    assert (back.what, back.id) == ("campaign", "deadbeef")
    assert back.message == "campaign 'deadbeef' not found"

    bad = ArgumentError("cursor", "'x' is not an event cursor")
    again = error_from_wire(bad.code, bad.message, bad.wire())
    assert type(again) is ArgumentError and not isinstance(again, SpecError)
    assert (again.argument, again.problem) == ("cursor", "'x' is not an event cursor")


def test_without_a_blob_the_status_still_picks_the_class() -> None:
    spec = error_from_wire("INVALID_ARGUMENT", "seed: must be >= 0")
    assert isinstance(spec, SpecError) and (spec.field, spec.problem) == ("seed", "must be >= 0")
    assert isinstance(error_from_wire("NOT_FOUND", "gone"), NotFoundError)
    assert isinstance(error_from_wire("UNAVAILABLE", "down"), UnavailableError)
    other = error_from_wire("DATA_LOSS", "lost")
    assert type(other) is FaultlabError and other.code == "DATA_LOSS"
    # A blob whose class disagrees with the status is ignored.
    wrong = error_from_wire("UNAVAILABLE", "down", NotFoundError("campaign", "c").wire())
    assert isinstance(wrong, UnavailableError)
