"""The faultlab SDK, CLI and reports."""

from faultlab.client._client import (
    CampaignHandle,
    CampaignStatus,
    Client,
    Event,
    ReplayResult,
    Results,
)

__all__ = ["CampaignHandle", "CampaignStatus", "Client", "Event", "ReplayResult", "Results"]
