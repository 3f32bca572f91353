"""The faultlab SDK, CLI and reports."""

from faultlab.client._client import CampaignHandle, Client
from faultlab.client._models import CampaignStatus, Event, ReplayResult, Results

__all__ = ["CampaignHandle", "CampaignStatus", "Client", "Event", "ReplayResult", "Results"]
