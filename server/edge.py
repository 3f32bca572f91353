"""Validation of every RPC field at the edge, and text that is always safe to send.

Each request field is checked before it reaches the coordinator: page tokens and event cursors
are ASCII digits of bounded length (``"²"`` is a digit to :meth:`str.isdigit`, and
``"99999999999999999999"`` overflows SQLite's 64-bit integers), ids are short ASCII tokens,
sizes are bounded. A bad value is an :class:`~faultlab.errors.ArgumentError` (or NOT_FOUND for
an id that cannot exist) whose message echoes at most a short prefix of it.

:func:`safe_text` is what every status message goes through: one line, valid UTF-8 (a lone
surrogate becomes ``\\udcxx``), no ANSI escapes, no control characters, bounded length — so a
status is always sendable and never exceeds gRPC's metadata limit.
"""

from __future__ import annotations

import re
from typing import Any

from faultlab.errors import ArgumentError, FaultlabError, NotFoundError
from faultlab.spec_text import short

MAX_MESSAGE = 300
"""Characters of a status message (and of each string field of its error data)."""
MAX_REQUEST_ID = 128
MAX_NAME = 256
MAX_DIGEST = 80

_OFFSET = re.compile(r"[0-9]{1,15}")
_CURSOR = re.compile(r"[0-9]{1,18}(-[0-9]{1,18})?")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?")
_ADDRESS = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b|\b0x[0-9a-fA-F]{6,}\b")
_PID = re.compile(r"\s*\((?:pid|ip)=[^)]*\)")


def safe_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one bounded line of valid UTF-8 without escapes or control characters."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub("", _ANSI.sub("", text))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def user_error(exc: BaseException) -> str:
    """What a campaign's ``error`` says about ``exc``: the worker's own exception when Ray
    wrapped it, one line, without server paths, addresses or terminal escapes. (The whole
    traceback goes to the coordinator's log, keyed by campaign id.)"""
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the worker's exception
    if isinstance(cause, BaseException):
        exc = cause
    text = exc.message if isinstance(exc, FaultlabError) else f"{type(exc).__name__}: {exc}"
    return one_line_error(text)


def one_line_error(text: str) -> str:
    """An error text for users: its last meaningful line (a traceback's exception line),
    paths and addresses replaced, bounded."""
    text = _CONTROL.sub("", _ANSI.sub("", text))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith(("Traceback", "ray::")):
        lines = lines[-1:]
    line = _PID.sub("", lines[0] if lines else "")
    line = _ADDRESS.sub("<address>", _PATH.sub("<path>", line))
    return safe_text(line)


def safe_data(value: Any, depth: int = 0) -> Any:
    """Error data with every string bounded by :func:`safe_text` (lists cut to 50 items)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict) and depth < 4:
        return {str(k)[:64]: safe_data(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple) and depth < 4:
        return [safe_data(v, depth + 1) for v in list(value)[:50]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return safe_text(str(value))


def page_offset(token: str, argument: str = "page_token") -> int:
    """The offset a page token stands for (tokens are opaque to callers)."""
    if not token:
        return 0
    if not _OFFSET.fullmatch(token):
        raise ArgumentError(argument, f"invalid page token {short(token)}")
    return int(token)


def page_size(size: int, default: int, maximum: int) -> int:
    if size < 0:
        raise ArgumentError("page_size", f"must be >= 0, got {size}")
    return min(size or default, maximum)


def event_cursor(cursor: str) -> str:
    """An event cursor: empty, a sequence number, or a ``ms-seq`` stream id."""
    if cursor and not _CURSOR.fullmatch(cursor):
        raise ArgumentError("cursor", f"{short(cursor)} is not an event cursor")
    return cursor


EVENT_TYPES = ("state", "progress", "trial", "log", "curve")


def event_types(values: Any) -> frozenset[str] | None:
    """A stream's event-type filter: None (every type) when empty; ``state`` is always in it
    (the terminal state ends the stream)."""
    if len(values) > 2 * len(EVENT_TYPES):
        raise ArgumentError("types", f"at most {2 * len(EVENT_TYPES)} entries, got {len(values)}")
    for value in values:
        if value not in EVENT_TYPES:
            raise ArgumentError("types", f"{short(value)} is not one of {', '.join(EVENT_TYPES)}")
    return frozenset(values) | {"state"} if values else None


def campaign_id(value: str) -> str:
    """A campaign id; one that no campaign could have is NOT_FOUND without a store lookup."""
    if not _ID.fullmatch(value):
        raise NotFoundError("campaign", safe_text(value, 64) if value else "",
                            "not found" if value else "campaign_id is empty")
    return value


def trial_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise NotFoundError("trial", safe_text(value, 64) if value else "",
                            "not found" if value else "trial_key is empty")
    return value


def digest(value: str) -> str:
    """An artifact id, bounded here (its format, ``sha256:<64 hex>``, is checked by the
    artifact store, which knows what it holds)."""
    if len(value) > MAX_DIGEST or safe_text(value, MAX_DIGEST) != value:
        raise ArgumentError("sha256", f"{short(value)} is not an artifact digest")
    return value


def request_id(value: str) -> str:
    if len(value) > MAX_REQUEST_ID or safe_text(value, MAX_REQUEST_ID) != value:
        raise ArgumentError("request_id", f"at most {MAX_REQUEST_ID} printable characters, "
                                          f"got {short(value)}")
    return value


def artifact_name(value: str) -> str:
    if len(value) > MAX_NAME or safe_text(value, MAX_NAME) != value:
        raise ArgumentError("name", f"at most {MAX_NAME} printable characters, got {short(value)}")
    return value
