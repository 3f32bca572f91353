"""Blobs of trial results as artifacts, and models that refer to another campaign's cell.

A worker cannot write to the store, so an engine returns a blob (e.g. a training cell's
checkpoint, safetensors bytes) as a top-level ``bytes`` value of a trial result;
:func:`store_result_blobs` puts each one as an artifact owned by the campaign's tenant and
leaves only its ``sha256:`` digest in the recorded result (results stay small).

:func:`resolve_model_reference` turns ``model: {from_campaign: ID, cell: {...}}`` into the
model the cell trained: ``training:<family>`` with the variant's architecture as ``options``
and the checkpoint artifact as ``file`` (built by
:mod:`faultlab.workers.zoo.sources.training_variant`). It runs at submit, so the stored spec
names the weights by digest and a recovered campaign never resolves again. Another tenant's
campaign is NOT_FOUND.

The result cache is shared by every tenant, so a result's blob is kept twice: as the
producing tenant's artifact and as an artifact of :data:`RESULT_CACHE_OWNER`, the cache's own
copy, which no tenant can read. When a campaign is answered from the cache,
:func:`share_result_blobs` gives its tenant the blobs its own results name, from that copy —
a tenant thus holds exactly the blobs of results its own campaigns recorded, and never one
that only another tenant's campaigns produced.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from faultlab.errors import NotFoundError, SpecError
from faultlab.hashing import blob_digest
from faultlab.server.auth import RESERVED_TENANT
from faultlab.server.config import CoordinatorConfig
from faultlab.server.store import Store
from faultlab.server.store.base import ARTIFACT_CHUNK
from faultlab.spec import CampaignSpec, ModelSpec, iter_sources

CELL_KEYS = ("variant", "recipe", "dataset", "seed")
"""What ``model.cell`` may select on: the variant's, recipe's and dataset's names, the seed."""
ARCH_OPTIONS = ("depth", "width", "skip", "linear", "norm", "bias")


RESULT_CACHE_OWNER = RESERVED_TENANT
"""Owner of the result cache's copies of result blobs: a tenant name no token may map to
(:class:`faultlab.server.auth.Authenticator` refuses it)."""
CACHE_QUOTA_BYTES = 2**62
"""The cache copies grow with the result cache (bounded per blob by ``max_artifact_bytes``)."""
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _chunks(value: bytes) -> Iterator[bytes]:
    return (value[i : i + ARTIFACT_CHUNK] for i in range(0, len(value), ARTIFACT_CHUNK))


def _put(store: Store, owner: str, ref: str, value: bytes, max_bytes: int, quota: int,
         name: str) -> None:
    if store.stat_artifact(owner, ref) is None:
        store.put_artifact(owner, ref, _chunks(value), declared_size=len(value),
                           max_bytes=max_bytes, quota_bytes=quota, name=name)


def store_result_blobs(
    store: Store, config: CoordinatorConfig, owner: str, campaign_id: str,
    result: dict[str, Any],
) -> dict[str, Any]:
    """``result`` with each top-level ``bytes`` value stored as ``owner``'s artifact (and as
    the result cache's copy) and replaced by its digest (an existing artifact is reused)."""
    out = dict(result)
    for name, value in result.items():
        if not isinstance(value, bytes):
            continue
        ref = blob_digest(value)
        label = f"{campaign_id}-{name}.safetensors"
        _put(store, owner, ref, value, config.max_artifact_bytes, config.tenant_quota_bytes,
             label)
        _put(store, RESULT_CACHE_OWNER, ref, value, config.max_artifact_bytes,
             CACHE_QUOTA_BYTES, label)
        out[name] = ref
    return out


def has_blobs(results: list[dict[str, Any]]) -> bool:
    """Whether any result holds a top-level ``bytes`` value (a checkpoint to store)."""
    return any(isinstance(value, bytes) for result in results for value in result.values())


def store_shard_blobs(
    store: Store, config: CoordinatorConfig, owner: str, campaign_id: str,
    results: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """:func:`store_result_blobs` for a shard's results, in one call off the event loop
    (idempotent: a retry after an outage reuses what was stored)."""
    return [store_result_blobs(store, config, owner, campaign_id, r) for r in results]


def share_result_blobs(
    store: Store, config: CoordinatorConfig, owner: str, campaign_id: str,
    results: list[dict[str, Any]],
) -> int:
    """Gives ``owner`` the blobs that cached ``results`` (about to be recorded for its
    campaign) name: each top-level digest the cache holds a copy of and ``owner`` lacks is
    copied to ``owner``'s artifacts (quota applies, as for a computed result). Returns how
    many were copied. Blocking: run off the event loop, before the results are recorded."""
    copied = 0
    for result in results:
        for name, value in result.items():
            if not (isinstance(value, str) and _DIGEST.fullmatch(value)):
                continue
            if store.stat_artifact(owner, value) is not None:
                continue
            if store.stat_artifact(RESULT_CACHE_OWNER, value) is None:
                continue  # not a result blob (or one recorded before the cache kept copies)
            blob = store.read_artifact(RESULT_CACHE_OWNER, value)
            _put(store, owner, value, blob, config.max_artifact_bytes,
                 config.tenant_quota_bytes, f"{campaign_id}-{name}.safetensors")
            copied += 1
    return copied


def _cell_name(trial: dict[str, Any]) -> str:
    return (f"variant={trial['variant']['name']} recipe={trial['recipe']['name']} "
            f"dataset={trial['dataset']} seed={trial['seed']}")


def _matches(trial: dict[str, Any], cell: dict[str, Any]) -> bool:
    values = {"variant": trial["variant"]["name"], "recipe": trial["recipe"]["name"],
              "dataset": trial["dataset"], "seed": trial["seed"]}
    return all(values[k] == v for k, v in cell.items())


def _find_cell(store: Store, campaign_id: str, cell: dict[str, Any]) -> tuple[dict[str, Any],
                                                                              dict[str, Any]]:
    unknown = sorted(set(cell) - set(CELL_KEYS))
    if unknown:
        raise SpecError(f"model.cell.{unknown[0]}", "is not a cell field", list(CELL_KEYS))
    rows = store.campaign_results(campaign_id)
    found = [(row.trial, result) for row, result in rows if _matches(row.trial, cell)]
    if len(found) != 1:
        names = [_cell_name(row.trial) for row, _ in rows][:20]
        raise SpecError("model.cell", f"selects {len(found)} of the campaign's {len(rows)} "
                        "finished cells; it must select exactly one", names)
    return found[0]


def resolve_model_reference(store: Store, owner: str, spec: CampaignSpec) -> CampaignSpec:
    """``spec`` with ``model.from_campaign`` replaced by the cell's trained model."""
    for field, source in iter_sources(spec):
        if field != "model" and isinstance(source, ModelSpec) and source.from_campaign:
            raise SpecError(f"{field}.from_campaign", "only the campaign's model: may refer "
                            "to another campaign")
    ref = spec.model
    if ref.from_campaign is None:
        return spec
    record = store.get_campaign(ref.from_campaign)
    if record is None or record.owner != owner:
        raise NotFoundError("campaign", ref.from_campaign)
    if record.kind != "training":
        raise SpecError("model.from_campaign", f"is a {record.kind} campaign; only training "
                        "campaigns have trained cells", ["training"])
    trial, result = _find_cell(store, ref.from_campaign, ref.cell)
    checkpoint = result.get("checkpoint")
    if not isinstance(checkpoint, str):
        raise SpecError("model.cell", f"the cell {_cell_name(trial)} has no checkpoint "
                        f"(status {result.get('status')!r})")
    variant = trial["variant"]
    if "workload" in trial:  # image, hyperspectral, ...: the workload names its model
        from faultlab.workers.training.workloads import workload_of_trial

        built = workload_of_trial(trial).reference(trial)
    else:
        built = {"name": f"training:{variant['family']}",
                 "options": {k: variant[k] for k in ARCH_OPTIONS}}
    model = {**built, "file": checkpoint,
             "label": ref.label or f"{variant['name']}@{ref.from_campaign}",
             "transforms": [t.model_dump(mode="json") for t in ref.transforms]}
    return spec.replace(model=model)


__all__ = ["CELL_KEYS", "RESULT_CACHE_OWNER", "resolve_model_reference", "share_result_blobs",
           "store_result_blobs", "has_blobs", "store_shard_blobs"]
