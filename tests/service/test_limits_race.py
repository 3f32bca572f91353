"""The per-tenant limit is atomic: 100 concurrent submissions with a limit of 32 accept
exactly 32 (the count and the insert are one store transaction)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from faultlab import Client
from faultlab.errors import ResourceExhaustedError
from faultlab.server.config import CoordinatorConfig
from tests.marks import skip_unless_slow
from tests.service.specs import fault_spec


def test_concurrent_submits_respect_the_limit(server_factory, store_url: str) -> None:  # type: ignore[no-untyped-def]
    if store_url.startswith("sqlite"):
        skip_unless_slow("slow variant: set FAULTLAB_SLOW=1 (the store contract races SQLite)")
    config = CoordinatorConfig(num_cpus=2, max_active_per_tenant=32)
    server = server_factory(store_url, config=config)
    with Client(server.address, timeout=120) as client:

        def submit(i: int) -> str | None:
            try:
                spec = fault_spec(trials=4000, seed=900 + i, name=f"limit-{i}")  # none ends soon
                return client.submit(spec).id
            except ResourceExhaustedError:
                return None

        with ThreadPoolExecutor(50) as pool:
            outcomes = list(pool.map(submit, range(100)))
        accepted = [c for c in outcomes if c is not None]
        assert len(accepted) == 32
        for campaign_id in accepted:
            client.get(campaign_id).cancel()
