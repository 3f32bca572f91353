"""Bounded in-memory state of the coordinator: the LRU map every cache is, and packed plans.

:class:`LruCache` bounds a cache by entries and, optionally, by a total weight (bytes).
:class:`PackedPlan` is how the coordinator holds a planning round: its ``(key, trial)`` pairs
pickled and zlib-compressed in chunks of :data:`PACK_CHUNK`, about 60 bytes a trial instead of
the ~1.5 kB a trial dict and its key take, so a round of 2×10⁵ trials costs ~12 MB while it
runs (and in the first-round plan cache), and only the chunk being unpacked and the shards in
flight exist as dicts.
"""

from __future__ import annotations

import collections
import pickle
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

PACK_CHUNK = 2048
"""Pairs per packed chunk: the most trial dicts a round unpacks at once (beyond a shard)."""
PLAN_CACHE_BYTES = 64 * 2**20
"""Total packed bytes the first-round plan cache keeps (about a million trials)."""


class LruCache(Generic[K, V]):
    """At most ``max_entries`` entries; a hit makes an entry the most recently used, and an
    insertion beyond the bound drops the least recently used one.

    With ``max_weight``, the entries' ``weigh(value)`` also sum to at most ``max_weight``: an
    insertion drops least recently used entries until it fits, and a value heavier than the
    whole bound is not kept at all."""

    def __init__(
        self,
        max_entries: int,
        max_weight: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        if (max_weight is None) != (weigh is None):
            raise ValueError("max_weight and weigh go together")
        self.max_entries = max_entries
        self.max_weight = max_weight
        self._weigh = weigh
        self.weight = 0
        self._entries: collections.OrderedDict[K, tuple[V, int]] = collections.OrderedDict()

    def get(self, key: K) -> V | None:
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key][0]

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value) if self._weigh else 0
        self._drop(key)
        if self.max_weight is not None and weight > self.max_weight:
            return
        self._entries[key] = (value, weight)
        self.weight += weight
        while len(self._entries) > self.max_entries or (
            self.max_weight is not None and self.weight > self.max_weight
        ):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.weight -= entry[1]

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class PackedPlan:
    """A planning round's ``(key, trial)`` pairs in plan order, packed (see the module doc).

    Pickle keeps every trial exactly as the engine made it (types included); each unpacking
    makes fresh dicts, so campaigns sharing a cached plan never share a trial object."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.trials = 0
        self.nbytes = 0

    def add(self, pairs: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Appends ``pairs`` (at most :data:`PACK_CHUNK` of them, by convention) as one chunk."""
        if not pairs:
            return
        blob = zlib.compress(pickle.dumps(list(pairs), protocol=pickle.HIGHEST_PROTOCOL), 1)
        self._chunks.append(blob)
        self.trials += len(pairs)
        self.nbytes += len(blob)

    def chunks(self) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """The pairs again, one unpacked chunk at a time, in plan order."""
        for index in range(len(self._chunks)):
            yield self.chunk(index)

    def chunk(self, index: int) -> list[tuple[str, dict[str, Any]]]:
        """The pairs of chunk ``index``, unpacked afresh."""
        pairs: list[tuple[str, dict[str, Any]]] = pickle.loads(zlib.decompress(self._chunks[index]))
        return pairs

    @property
    def chunk_count(self) -> int:
        return len(self._chunks)

    async def stored_chunks(self) -> AsyncIterator[list[tuple[str, dict[str, Any]]]]:
        """:meth:`chunks` for a round the runner stored whole before running it
        (:class:`~faultlab.server.plans.RoundPlan`)."""
        for pairs in self.chunks():
            yield pairs

    def __len__(self) -> int:
        return self.trials
