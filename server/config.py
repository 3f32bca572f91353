"""Settings of one coordinator process."""

from __future__ import annotations

from dataclasses import dataclass


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
