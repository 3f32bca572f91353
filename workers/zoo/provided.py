"""The artifacts a campaign was given, for the zoo's loaders to find without plumbing.

The coordinator reads a campaign's uploaded artifacts (``{"sha256:<hex>": bytes}``) and the
worker task that prepares the campaign makes them current with :func:`provided_artifacts`
around the engine's ``prepare`` (and the coordinator around ``validate``); every engine loads
its models and datasets through :mod:`faultlab.workers.zoo.registry`, which reads them with
:func:`current_artifacts`. A context variable, so concurrent campaigns in one process (threads
of a Ray actor, the coordinator's validation threads) never see each other's artifacts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

_EMPTY: Mapping[str, bytes] = MappingProxyType({})
_CURRENT: ContextVar[Mapping[str, bytes]] = ContextVar("faultlab_artifacts", default=_EMPTY)


@contextlib.contextmanager
def provided_artifacts(artifacts: Mapping[str, bytes]) -> Iterator[None]:
    """Makes ``artifacts`` the current campaign's artifacts inside the block."""
    token = _CURRENT.set(MappingProxyType(dict(artifacts)))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_artifacts() -> Mapping[str, bytes]:
    """The artifacts of the campaign being prepared or validated (empty outside one)."""
    return _CURRENT.get()
