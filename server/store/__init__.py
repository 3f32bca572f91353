"""Coordinator persistence: one contract, SQLite and Redis backends."""

from faultlab.events import StoredEvent
from faultlab.server.store.base import (
    ArtifactInfo,
    CampaignRecord,
    ResultItem,
    ResultText,
    Store,
    TrialRow,
    open_store,
)

__all__ = [
    "ArtifactInfo",
    "CampaignRecord",
    "ResultItem",
    "ResultText",
    "Store",
    "StoredEvent",
    "TrialRow",
    "open_store",
]
