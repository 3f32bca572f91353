"""A round's plan on the coordinator: packed as the engine makes it, stored, handed to shards.

A round is planned lazily (:meth:`~faultlab.workers.engine.Engine.iter_plan`) into a
:class:`~faultlab.server.caches.PackedPlan` (~60 bytes a trial), written to the store a chunk
at a time and unpacked again a chunk at a time (:class:`RoundSource`) as the scheduler cuts
shards, so trials exist as dicts only a chunk and the shards in flight at a time.

Where the engine knows the round's size before making it
(:meth:`~faultlab.workers.engine.Engine.round_size`), the round is a :class:`StreamedPlan`:
a thread packs it while the first chunks are already stored and their shards run, so the
first trial does not wait for the whole round to be planned (a 10⁴-trial fault round takes
about half a second to plan and key). Chunks grow from :data:`FIRST_CHUNK` to
:data:`~faultlab.server.caches.PACK_CHUNK` trials, so the first shards start within
milliseconds. A shard only ever takes trials of chunks already in the store, so recovery and
cancel see what they saw before: every trial a shard ran is a stored trial.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

from faultlab.errors import FaultlabError
from faultlab.server.caches import PACK_CHUNK, PackedPlan
from faultlab.spec import CampaignSpec
from faultlab.workers.engine import Engine, TrialRecord

TrialPair = tuple[str, dict[str, Any]]
"""``(content key, trial)``."""

#: Trials in a streamed round's first chunk; each next chunk is four times larger, up to
#: PACK_CHUNK.
FIRST_CHUNK = 64


def pack_plan(
    engine: Engine[Any],
    spec: CampaignSpec,
    meta: dict[str, Any],
    round_index: int,
    previous: list[TrialRecord],
    limit: int,
) -> PackedPlan:
    """The round's keyed trials, packed as the engine makes them (blocking: run off-loop).

    Stops once the plan holds more than ``limit`` trials: the caller refuses such a round
    before storing anything, so an engine that plans without end is not followed there."""
    packed = PackedPlan()
    trials = engine.iter_plan(spec, meta, round_index, previous)
    while packed.trials <= limit and (chunk := list(itertools.islice(trials, PACK_CHUNK))):
        packed.add(engine.keyed(spec, meta, chunk))
    return packed


class RoundPlan(Protocol):
    """What :class:`RoundSource` reads: the round's size and its stored chunks in plan order
    (a :class:`~faultlab.server.caches.PackedPlan` stored whole, or a :class:`StreamedPlan`)."""

    def __len__(self) -> int: ...

    def stored_chunks(self) -> AsyncIterator[list[TrialPair]]: ...


class StreamedPlan:
    """A round of known size, packed by a thread (:meth:`pack`) while :meth:`store_all`
    writes each chunk to the store and :meth:`stored_chunks` hands stored chunks on."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.packed = PackedPlan()
        self.stop = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._packed_chunks = 0
        self._stored = 0
        self._finished = False  # the thread made every chunk
        self._error: BaseException | None = None
        self._thread: asyncio.Future[None] | None = None
        """The planning thread's future, held: the loop keeps only weak references to tasks."""

    def __len__(self) -> int:
        return self.size

    def start(self, engine: Engine[Any], spec: CampaignSpec, meta: dict[str, Any],
              trials: Iterator[dict[str, Any]]) -> None:
        """Packs ``trials`` in a thread from now on."""
        self._thread = asyncio.ensure_future(
            asyncio.to_thread(self.pack, engine, spec, meta, trials))

    @property
    def complete(self) -> bool:
        """Every trial of the round is packed and stored."""
        return self._complete() and self._error is None and self.packed.trials == self.size

    # --- the planning thread -----------------------------------------------------------
    def pack(self, engine: Engine[Any], spec: CampaignSpec, meta: dict[str, Any],
             trials: Iterator[dict[str, Any]]) -> None:
        """Packs ``trials`` chunk by chunk (blocking: the thread), announcing each chunk."""
        try:
            size = FIRST_CHUNK
            while not self.stop.is_set() and (chunk := list(itertools.islice(trials, size))):
                self.packed.add(engine.keyed(spec, meta, chunk))
                self._announce(self.packed.chunk_count, None)
                size = min(4 * size, PACK_CHUNK)
            if not self.stop.is_set() and self.packed.trials != self.size:
                raise FaultlabError(f"the {spec.kind} engine planned {self.packed.trials} "
                                    f"trials for a round it sized at {self.size}")
            self._announce(None, None)
        except BaseException as exc:  # noqa: BLE001 - handed to the runner, which fails it
            self._announce(None, exc)

    def _announce(self, chunks: int | None, error: BaseException | None) -> None:
        def update() -> None:
            if chunks is not None:
                self._packed_chunks = chunks
            elif error is not None:
                self._error = error
            else:
                self._finished = True
            asyncio.ensure_future(self._notify())

        try:
            self._loop.call_soon_threadsafe(update)
        except RuntimeError:  # the loop is closed (the coordinator stopped): nobody waits
            self.stop.set()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _wait(self, ready: Callable[[], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: ready() or self._error is not None)
        if self._error is not None and not ready():
            raise self._error

    # --- the event loop ----------------------------------------------------------------
    async def store_all(self, add: Callable[[list[TrialPair]], Awaitable[Any]]) -> None:
        """Stores every chunk as it is packed, in order (one task per round)."""
        index = 0
        try:
            while True:
                await self._wait(functools.partial(self._packed_past, index))
                if index >= self._packed_chunks:
                    return
                await add(self.packed.chunk(index))
                index += 1
                self._stored = index
                await self._notify()
        except BaseException as exc:
            self._error = self._error or exc
            self.stop.set()
            await self._notify()
            raise

    async def stored_chunks(self) -> AsyncIterator[list[TrialPair]]:
        index = 0
        while True:
            await self._wait(functools.partial(self._stored_past, index))
            if index >= self._stored:
                return
            yield self.packed.chunk(index)
            index += 1

    def _packed_past(self, index: int) -> bool:
        return self._packed_chunks > index or self._finished

    def _stored_past(self, index: int) -> bool:
        return self._stored > index or self._complete()

    def _complete(self) -> bool:
        return self._finished and self._stored == self._packed_chunks


class RoundSource:
    """The round's trials still to compute, unpacked a chunk at a time as shards are cut.

    Each chunk drops the trials already DONE (a resumed campaign) and hands the rest to
    ``from_cache``, which records those whose key has a stored result and returns the others;
    so the trials of the first chunk that have results are recorded before any shard starts,
    as when the whole round was checked at once. Holds one chunk plus what a shard asks for."""

    def __init__(
        self,
        plan: RoundPlan,
        done: set[str],
        from_cache: Callable[[list[TrialPair]], Awaitable[list[TrialPair]]],
    ) -> None:
        self._chunks: AsyncIterator[list[TrialPair]] = plan.stored_chunks()
        self._unread = len(plan)
        self._done = done
        self._from_cache = from_cache
        self._buffer: collections.deque[TrialPair] = collections.deque()

    def remaining(self) -> int:
        return len(self._buffer) + self._unread

    async def ready(self) -> bool:
        """Unpacks until a trial is left to compute; False when none is (all stored)."""
        while not self._buffer and self._unread:
            await self._fill()
        return bool(self._buffer)

    async def take(self, count: int) -> list[TrialPair]:
        while len(self._buffer) < count and self._unread:
            await self._fill()
        return [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]

    async def _fill(self) -> None:
        pairs: list[TrialPair] = await anext(self._chunks, [])
        self._unread = self._unread - len(pairs) if pairs else 0
        todo = [(k, t) for k, t in pairs if k not in self._done]
        if todo:
            self._buffer.extend(await self._from_cache(todo))
