"""Settings of one coordinator process, and the ``faultlab serve`` flags that set them."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class CoordinatorConfig:
    """Settings of one coordinator process."""

    ray_address: str | None = None
    """``auto`` or ``ray://…`` to join a cluster; None starts/uses a local Ray."""
    num_cpus: int | None = None
    """CPUs of a local Ray instance (None: all)."""
    max_active_per_tenant: int = 32
    """Non-terminal campaigns a tenant may have at once (RESOURCE_EXHAUSTED beyond)."""
    max_streams_per_tenant: int = 1000
    """Event streams (StreamEvents) a tenant may hold open at once (RESOURCE_EXHAUSTED beyond)."""
    stream_batch_window_s: float = 0.1
    """Longest spacing of a busy campaign's stream wake-ups: events arriving within it go out
    as one message per subscriber. The spacing grows with the subscribers (0.2 ms each) up to
    this, so 500 subscribers of a busy campaign cost a bounded share of the event loop, and
    an event waits at most about this long (0: one wake-up per store read)."""
    stream_buffer_events: int = 4096
    """Recent events each followed campaign keeps in memory, serialised once for every
    subscriber; one from further back reads the store itself."""
    lease_ttl_s: float = 10.0
    """Lifetime of the coordinator's lease on its store, renewed every third of it."""
    lease_wait_s: float = 15.0
    """How long a starting coordinator waits for another's live lease to lapse before it
    refuses to start (a holder on this host whose process is gone is taken over at once)."""
    max_trials: int = 10_000_000
    """Largest ``execution.max_trials`` a campaign may ask for."""
    initial_shard_trials: int = 4
    """Trials in the first shards, before the per-trial cost has been measured."""
    cache_entries: int = 64
    """Entries each in-memory cache (reports, ``prepare`` metadata) keeps, least recently
    used first out."""
    plan_cache_entries: int = 8
    """First-round plans kept for identical resubmissions (a plan can be large)."""
    allow_factory: tuple[str, ...] = ()
    """Modules whose ``factory:`` callables a spec may name (``faultlab serve --allow-factory``):
    a dotted prefix allows the module and its submodules; ``"*"`` allows any (the embedded
    ``Client()``). Empty: every ``factory`` is refused with PERMISSION_DENIED."""
    max_artifact_bytes: int = 512 * 2**20
    """Largest artifact a client may upload (RESOURCE_EXHAUSTED beyond)."""
    tenant_quota_bytes: int = 4 * 2**30
    """Total bytes of artifacts one tenant may store (RESOURCE_EXHAUSTED beyond)."""

    def __post_init__(self) -> None:
        for name, (low, high) in _BOUNDS.items():
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)
                    and low <= value <= high):
                raise ValueError(
                    f"{name} must be between {_number(low)} and {_number(high)}, got {value!r}"
                )


_BOUNDS: dict[str, tuple[float, float]] = {
    "max_active_per_tenant": (1, 1_000_000),
    "max_streams_per_tenant": (1, 1_000_000),
    "stream_batch_window_s": (0.0, 1.0),
    "stream_buffer_events": (16, 1_000_000),
    "lease_ttl_s": (1.0, 3600.0),
    "lease_wait_s": (0.0, 3600.0),
}
"""The numeric settings that are checked, with their inclusive bounds."""

SERVE_FLAGS: dict[str, str] = {
    "lease_ttl_s": "--lease-ttl",
    "lease_wait_s": "--lease-wait",
    "max_streams_per_tenant": "--max-streams-per-tenant",
    "stream_batch_window_s": "--stream-batch-window",
    "stream_buffer_events": "--stream-buffer-events",
}
"""The ``faultlab serve`` flag of each setting it exposes beyond the basic ones."""

_HELP = {
    "lease_ttl_s": "seconds the store lease lives unless renewed (renewed every third); a "
                   "coordinator that cannot renew it in time stops writing",
    "lease_wait_s": "seconds a starting coordinator waits for another's live lease to lapse "
                    "before it refuses to start",
    "max_streams_per_tenant": "event streams one tenant may hold open at once",
    "stream_batch_window_s": "longest spacing (s) of a busy campaign's stream wake-ups; events "
                             "within it go out as one message per subscriber (0: no spacing)",
    "stream_buffer_events": "recent events kept in memory per followed campaign",
}


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def bounded(name: str) -> Callable[[str], Any]:
    """The argparse ``type`` of a numeric setting: its kind, within :data:`_BOUNDS`."""
    low, high = _BOUNDS[name]
    kind = int if isinstance(_DEFAULTS[name], int) else float

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be between {_number(low)} and {_number(high)}, got {text}"
            )
        return value

    return parse


_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(CoordinatorConfig)}


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """Adds the lease and stream flags of :data:`SERVE_FLAGS` to ``faultlab serve``."""
    for name, flag in SERVE_FLAGS.items():
        low, high = _BOUNDS[name]
        parser.add_argument(
            flag, dest=name, type=bounded(name), default=_DEFAULTS[name],
            metavar="N" if isinstance(_DEFAULTS[name], int) else "SECONDS",
            help=f"{_HELP[name]} ({_number(low)}-{_number(high)}; default %(default)s)",
        )


def serve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`CoordinatorConfig` fields that :func:`add_serve_flags` parsed."""
    return {name: getattr(args, name) for name in SERVE_FLAGS}
