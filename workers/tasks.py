"""The functions Ray runs on workers. The coordinator wraps them with ``ray.remote`` options.

A campaign's context (model, data, golden outputs) is produced once by :func:`prepare_campaign`
and stays in Ray's object store; shard tasks receive its ObjectRef wrapped in a list (so Ray
does not resolve it eagerly) and each worker process deserialises it once and keeps it, so a
campaign's model travels to a node once and is unpickled once per worker, not once per task.

A campaign's uploaded artifacts arrive as ``{digest: ObjectRef}`` (put into the object store
once per campaign by the coordinator); :func:`fetch_artifacts` keeps each one in a per-node
on-disk cache by digest, so a node fetches an artifact once, whatever number of campaigns and
replays use it.

Shards run on the device Ray assigned to the task (:func:`~faultlab.workers.engine.shard_device`,
the CPU when none): the context is moved there once per worker and campaign (it is cached
moved), with the numerics the spec's ``execution`` section asks for (TF32, determinism).
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass
from typing import Any

from faultlab.hashing import blob_digest
from faultlab.spec import CampaignSpec, parse_spec
from faultlab.workers import progress
from faultlab.workers.artifact_cache import ArtifactCache
from faultlab.workers.zoo.provided import provided_artifacts

#: Uploaded artifacts on this node: ``$FAULTLAB_HOME/artifacts/<sha256 hex>.bin``.
_ARTIFACTS = ArtifactCache("artifacts")
_CONTEXTS: collections.OrderedDict[str, Any] = collections.OrderedDict()
_MAX_CONTEXTS = 4


@dataclass
class ShardContext:
    """What ``prepare_campaign`` puts into the object store: the engine's context and the
    execution settings its shards need on the worker."""

    context: Any
    allow_tf32: bool = False


def fetch_artifacts(refs: dict[str, Any]) -> dict[str, bytes]:
    """The bytes of each ``sha256:`` digest: from this node's cache, else from Ray's object
    store (then cached). The loaders check every blob against its digest before use."""
    import ray

    blobs: dict[str, bytes] = {}
    for ref_digest, ref in refs.items():
        key = ref_digest.removeprefix("sha256:")
        path = _ARTIFACTS.get(key, ".bin")
        if path is None:
            path = _ARTIFACTS.put(key, bytes(ray.get(ref)), ".bin")
        blobs[ref_digest] = path.read_bytes()
    return blobs


def prepare_campaign(spec_json: str, artifacts: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Runs the engine's ``prepare`` with the campaign's artifacts (``{digest: ObjectRef}``);
    returns (context, meta). Called with num_returns=2."""
    from faultlab.workers import get_engine

    spec = parse_spec(spec_json)
    with provided_artifacts(fetch_artifacts(artifacts)):
        prepared = get_engine(spec.kind).prepare(spec)
    return ShardContext(prepared.context, spec.execution.allow_tf32), prepared.meta


def on_device(kind: str, shard_context: ShardContext) -> Any:
    """The engine's context on this task's device, with that device's numerics set."""
    from faultlab.workers import get_engine
    from faultlab.workers.engine import configure_device, shard_device

    device = shard_device()
    configure_device(device, shard_context.allow_tf32)
    return get_engine(kind).to_device(shard_context.context, device)


def _context(kind: str, context_box: list[Any]) -> Any:
    import ray

    ref = context_box[0]
    key = ref.hex()
    if key in _CONTEXTS:
        _CONTEXTS.move_to_end(key)
        return _CONTEXTS[key]
    context = on_device(kind, ray.get(ref))
    _CONTEXTS[key] = context
    while len(_CONTEXTS) > _MAX_CONTEXTS:
        _CONTEXTS.popitem(last=False)
    return context


def run_shard(
    kind: str, context_box: list[Any], trials: list[dict[str, Any]],
    channel: progress.Channel | None = None,
) -> dict[str, Any]:
    """Runs one shard; returns ``{"results", "seconds", "pid"}``. ``channel``: where the
    engine's live records go (:mod:`faultlab.workers.progress`)."""
    from faultlab.workers import get_engine

    start = time.perf_counter()
    context = _context(kind, context_box)
    with progress.activated(channel):
        results = get_engine(kind).run_shard(context, trials)
    if len(results) != len(trials):
        raise RuntimeError(
            f"engine {kind!r} returned {len(results)} results for {len(trials)} trials"
        )
    return {"results": results, "seconds": time.perf_counter() - start, "pid": os.getpid()}


def replay_trial(
    spec_json: str, trial: dict[str, Any], artifacts: dict[str, Any]
) -> dict[str, Any]:
    """Prepares the campaign afresh and re-runs one trial (for ``faultlab replay``)."""
    from faultlab.workers import get_engine

    spec: CampaignSpec = parse_spec(spec_json)
    engine = get_engine(spec.kind)
    with provided_artifacts(fetch_artifacts(artifacts)):
        prepared = engine.prepare(spec)
    context = on_device(spec.kind, ShardContext(prepared.context, spec.execution.allow_tf32))
    result = engine.run_shard(context, [trial])[0]
    # A blob (a checkpoint) is stored by digest: the replay answers the digest too.
    return {k: blob_digest(v) if isinstance(v, bytes) else v for k, v in result.items()}
