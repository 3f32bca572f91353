"""Campaign and trial states. Terminal campaign states never change (guarded transitions)."""

from __future__ import annotations

import enum


class CampaignState(str, enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {CampaignState.SUCCEEDED, CampaignState.FAILED, CampaignState.CANCELLED}
)
ACTIVE_STATES = frozenset({CampaignState.QUEUED, CampaignState.RUNNING})


class TrialState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
