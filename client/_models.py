"""The SDK's value types: campaign status, events, results, replay outcomes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from faultlab.client._results_table import RawRecord, Unsupported, results_table
from faultlab.events import CampaignEvent, event_from_dict, event_from_proto
from faultlab.states import CampaignState
from faultlab.v1 import faultlab_pb2 as pb


@dataclass(frozen=True)
class CampaignStatus:
    """A campaign's state and progress as the coordinator reports it."""

    id: str
    name: str
    kind: str
    state: CampaignState
    owner: str
    spec_hash: str
    seed: int
    code_version: str
    trials_total: int
    trials_done: int
    trials_cached: int
    trials_failed: int
    created_at: float
    updated_at: float
    error: str
    spec: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def progress(self) -> float:
        return self.trials_done / self.trials_total if self.trials_total else 0.0

    @classmethod
    def from_message(cls, msg: pb.Campaign) -> CampaignStatus:
        return cls(
            id=msg.id, name=msg.name, kind=msg.kind,
            state=CampaignState(pb.CampaignState.Name(msg.state)), owner=msg.owner,
            spec_hash=msg.spec_hash, seed=msg.seed, code_version=msg.code_version,
            trials_total=msg.trials_total, trials_done=msg.trials_done,
            trials_cached=msg.trials_cached, trials_failed=msg.trials_failed,
            created_at=msg.created_at, updated_at=msg.updated_at, error=msg.error,
            spec=json.loads(msg.spec_json) if msg.spec_json else {},
        )


@dataclass(frozen=True)
class Event:
    """One entry of a campaign's event log. ``type`` is state, progress, trial or log."""

    cursor: str
    campaign_id: str
    time: float
    type: str
    data: dict[str, Any]

    @property
    def event(self) -> CampaignEvent:
        """The typed event (:mod:`faultlab.events`)."""
        return event_from_dict({"type": self.type, **self.data})

    @classmethod
    def from_message(cls, msg: pb.Event) -> Event:
        stored = event_from_proto(msg)
        data = stored.event.to_dict()
        kind = data.pop("type")
        return cls(stored.cursor, msg.campaign_id, stored.time, kind, data)


class Results:
    """Finished trial records of a campaign, in plan order.

    Built from the pages' stored JSON (``raw``: key, attempts, trial and result texts), which
    :meth:`to_table` parses in C++ with pyarrow; :attr:`records` decodes them per record on
    first use (or are given directly).
    """

    def __init__(self, campaign_id: str, records: list[dict[str, Any]] | None = None, *,
                 raw: Sequence[RawRecord] | None = None) -> None:
        self.campaign_id = campaign_id
        self._records = records
        self._raw = raw

    @property
    def records(self) -> list[dict[str, Any]]:
        """Each trial as ``{"key", "trial", "result", "attempts"}`` (decoded once)."""
        if self._records is None:
            self._records = [
                {"key": key, "trial": json.loads(trial), "result": json.loads(result),
                 "attempts": attempts}
                for key, attempts, trial, result in self._raw or ()
            ]
        return self._records

    def to_table(self) -> pa.Table:
        """The rows of :meth:`to_pandas` as an Arrow table (what ``--format parquet`` writes)."""
        if self._raw is not None:
            try:
                return results_table(self._raw)
            except Unsupported:
                pass  # a shape Arrow types differently from pandas: the per-record path
        return pa.Table.from_pandas(self._records_frame(), preserve_index=False)

    def to_pandas(self) -> pd.DataFrame:
        """One row per trial: ``key``, ``attempts``, then ``trial.*`` and ``result.*`` columns.

        Nested dicts become dotted columns, lists JSON strings.
        """
        if self._raw is not None:
            try:
                return results_table(self._raw).to_pandas()
            except Unsupported:
                pass
        return self._records_frame()

    def _records_frame(self) -> pd.DataFrame:
        rows = [
            {"key": r["key"], "attempts": r["attempts"],
             **{f"trial.{k}": v for k, v in _flat(r["trial"]).items()},
             **{f"result.{k}": v for k, v in _flat(r["result"]).items()}}
            for r in self.records
        ]
        return pd.DataFrame(rows)

    def __len__(self) -> int:
        return len(self._raw) if self._records is None and self._raw is not None \
            else len(self.records)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, f"{name}."))
        elif isinstance(v, list):
            out[name] = json.dumps(v)
        else:
            out[name] = v
    return out


@dataclass(frozen=True)
class ReplayResult:
    trial: dict[str, Any]
    stored: dict[str, Any]
    replayed: dict[str, Any]
    identical: bool
