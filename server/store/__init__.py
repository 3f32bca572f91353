"""Coordinator persistence: one contract, SQLite and Redis backends."""

from faultlab.server.store.base import (
    CampaignRecord,
    ResultItem,
    Store,
    StoredEvent,
    TrialRow,
    open_store,
)

__all__ = ["CampaignRecord", "ResultItem", "Store", "StoredEvent", "TrialRow", "open_store"]
