"""faultlab: distributed fault-injection and evaluation campaigns for PyTorch / PyG models.

>>> from faultlab import Client
>>> job = Client().submit("examples/fault-digits.yaml")   # Client() = embedded coordinator
>>> job.wait(progress=True); job.report().table()
"""

from faultlab.client import (
    CampaignHandle,
    CampaignStatus,
    Client,
    Event,
    ReplayResult,
    Results,
)
from faultlab.errors import (
    CampaignCancelledError,
    CampaignFailedError,
    FailedPreconditionError,
    FaultlabError,
    NotFoundError,
    ResourceExhaustedError,
    SpecError,
    UnauthenticatedError,
    UnavailableError,
)
from faultlab.report import Report
from faultlab.spec import CampaignSpec, parse_spec
from faultlab.states import CampaignState

__all__ = [
    "CampaignCancelledError",
    "CampaignFailedError",
    "CampaignHandle",
    "CampaignSpec",
    "CampaignState",
    "CampaignStatus",
    "Client",
    "Event",
    "FailedPreconditionError",
    "FaultlabError",
    "NotFoundError",
    "Report",
    "ReplayResult",
    "Results",
    "ResourceExhaustedError",
    "SpecError",
    "UnauthenticatedError",
    "UnavailableError",
    "parse_spec",
]
