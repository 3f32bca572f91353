"""What one tenant may learn about the shared result cache.

The content-addressed result cache is shared by every tenant: identical trials are computed
once. Whether a trial came *from the cache* is visible only when the tenant's own earlier
campaigns could have produced it — the tenant already ran a campaign with the same spec
(:func:`result_content`: the spec without its name and execution settings).
Otherwise cache hits are recorded as ordinary finished trials (``trials_cached`` stays 0, the
log says "computed"), so resubmitting another tenant's spec reveals nothing about what they ran.
"""

from __future__ import annotations

import json

from faultlab.hashing import canonical_json
from faultlab.server.store import Store

UNRELATED_TO_RESULTS = frozenset({"name", "execution"})

OWN_CAMPAIGNS_SCANNED = 1000
"""How many of the tenant's newest campaigns are searched for the same spec."""


def cache_hits_visible(store: Store, campaign_id: str) -> bool:
    """Whether the campaign's owner may see its cache hits as such (blocking: run off-loop)."""
    record = store.get_campaign(campaign_id)
    if record is None:
        return False
    content = result_content(record.spec_json)
    own = store.list_campaigns(record.owner, OWN_CAMPAIGNS_SCANNED)
    return any(c.id != record.id and result_content(c.spec_json) == content for c in own)


def result_content(spec_json: str) -> str:
    """The part of a spec its results depend on, canonically encoded."""
    spec = json.loads(spec_json)
    return canonical_json({k: v for k, v in spec.items() if k not in UNRELATED_TO_RESULTS})
