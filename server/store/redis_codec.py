"""Redis store: the encoding of records in Redis hashes and of the URL in messages."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from faultlab.server.store.base import CampaignRecord, TrialRow
from faultlab.states import CampaignState, TrialState

_CAMPAIGN_FIELDS = frozenset(f.name for f in dataclasses.fields(CampaignRecord))
_INT_FIELDS = ("seed", "trials_total", "trials_done", "trials_cached", "trials_failed")
_FLOAT_FIELDS = ("created_at", "updated_at")


def redacted(url: str) -> str:
    """The URL without its password, fit for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def encode_campaign(record: CampaignRecord) -> dict[str, str]:
    values = dataclasses.asdict(record)
    values["state"] = record.state.value
    return {name: repr(v) if isinstance(v, float) else str(v) for name, v in values.items()}


def decode_campaign(fields: dict[str, str]) -> CampaignRecord:
    values: dict[str, Any] = {k: v for k, v in fields.items() if k in _CAMPAIGN_FIELDS}
    for name in _INT_FIELDS:
        values[name] = int(values[name])
    for name in _FLOAT_FIELDS:
        values[name] = float(values[name])
    values["state"] = CampaignState(values["state"])
    return CampaignRecord(**values)


def trial_row(key: str, state_json: str, trial_json: str) -> TrialRow:
    state = json.loads(state_json)
    return TrialRow(
        key=key,
        index=state["index"],
        round=state["round"],
        state=TrialState(state["state"]),
        attempts=state["attempts"],
        trial=json.loads(trial_json),
        error=state["error"],
    )
