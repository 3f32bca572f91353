"""faultlab: distributed fault-injection and evaluation campaigns for PyTorch / PyG models.

>>> from faultlab import Client
>>> job = Client().submit("examples/fault-digits.yaml")   # Client() = embedded coordinator
>>> job.wait(progress=True); job.report().table()

The public names are re-exported lazily: ``import faultlab.errors`` on a Ray worker loads
neither the SDK nor grpc nor pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultlab.client import (
        CampaignHandle,
        CampaignStatus,
        Client,
        Event,
        ReplayResult,
        Results,
    )
    from faultlab.errors import (
        ArgumentError,
        CampaignCancelledError,
        CampaignFailedError,
        FailedPreconditionError,
        FaultlabError,
        NotFoundError,
        PermissionDeniedError,
        ResourceExhaustedError,
        SpecError,
        UnauthenticatedError,
        UnavailableError,
    )
    from faultlab.report import Report
    from faultlab.spec import CampaignSpec, parse_spec
    from faultlab.states import CampaignState

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["CampaignHandle", "CampaignStatus", "Client", "Event", "ReplayResult", "Results"],
        "faultlab.client",
    ),
    **dict.fromkeys(
        [
            "ArgumentError", "CampaignCancelledError", "CampaignFailedError",
            "FailedPreconditionError",
            "FaultlabError", "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError",
            "SpecError",
            "UnauthenticatedError", "UnavailableError",
        ],
        "faultlab.errors",
    ),
    "Report": "faultlab.report",
    "CampaignSpec": "faultlab.spec",
    "parse_spec": "faultlab.spec",
    "CampaignState": "faultlab.states",
}

# A literal list, so that linters and type checkers see the public surface.
__all__ = [
    "ArgumentError", "CampaignCancelledError", "CampaignFailedError", "CampaignHandle",
    "CampaignSpec", "CampaignState", "CampaignStatus", "Client", "Event", "FailedPreconditionError",
    "FaultlabError", "NotFoundError", "PermissionDeniedError", "ReplayResult", "Report",
    "ResourceExhaustedError",
    "Results", "SpecError", "UnauthenticatedError", "UnavailableError", "parse_spec",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faultlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
