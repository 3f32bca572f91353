"""The SDK: :class:`Client` and :class:`CampaignHandle`.

``Client("host:port", token=...)`` talks to a coordinator; ``Client()`` starts an embedded
one (in-process gRPC server, local Ray, SQLite store under ``$FAULTLAB_HOME``) and talks to
it over the same gRPC contract. Every unary call has a deadline; gRPC failures surface as the
exceptions of :mod:`faultlab.errors`.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pandas as pd

from faultlab.errors import (
    CampaignCancelledError,
    CampaignFailedError,
    FaultlabError,
    UnavailableError,
    error_from_status,
)
from faultlab.report import Report
from faultlab.spec import CampaignSpec, parse_spec
from faultlab.states import CampaignState
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

T = TypeVar("T")

_EMBEDDED: dict[str, Any] = {}
_EMBEDDED_LOCK = threading.Lock()


def default_store_url() -> str:
    """The embedded store: ``sqlite:///$FAULTLAB_HOME/faultlab.db``."""
    home = Path(os.environ.get("FAULTLAB_HOME", Path.home() / ".cache" / "faultlab"))
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite://{home / 'faultlab.db'}"


def _embedded(store_url: str, num_cpus: int | None) -> str:
    with _EMBEDDED_LOCK:
        if store_url not in _EMBEDDED:
            from faultlab.server.app import EmbeddedServer

            server = EmbeddedServer(store_url, num_cpus=num_cpus)
            _EMBEDDED[store_url] = server
            atexit.register(server.stop)
        return str(_EMBEDDED[store_url].address)


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

    @classmethod
    def from_message(cls, msg: pb.Event) -> Event:
        body = msg.WhichOneof("body") or "log"
        data: dict[str, Any]
        if body == "state":
            data = {"state": pb.CampaignState.Name(msg.state.state), "message": msg.state.message}
        elif body == "progress":
            p = msg.progress
            data = {"done": p.done, "total": p.total, "cached": p.cached, "failed": p.failed}
        elif body == "trial":
            t = msg.trial
            data = {"key": t.key, "trial": json.loads(t.trial_json),
                    "result": json.loads(t.result_json), "cached": t.cached}
        else:
            data = {"level": msg.log.level, "message": msg.log.message}
        return cls(msg.cursor, msg.campaign_id, msg.time, body, data)


@dataclass(frozen=True)
class Results:
    """Finished trial records of a campaign, in plan order."""

    campaign_id: str
    records: list[dict[str, Any]]

    def to_pandas(self) -> pd.DataFrame:
        """One row per trial: ``key``, ``attempts``, then ``trial.*`` and ``result.*`` columns."""
        rows = [
            {"key": r["key"], "attempts": r["attempts"],
             **{f"trial.{k}": v for k, v in _flat(r["trial"]).items()},
             **{f"result.{k}": v for k, v in _flat(r["result"]).items()}}
            for r in self.records
        ]
        return pd.DataFrame(rows)

    def __len__(self) -> int:
        return len(self.records)


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


class Client:
    """Connection to a faultlab coordinator.

    Args:
        address: ``host:port`` of a coordinator; ``None`` starts an embedded one.
        token: bearer token when the coordinator has authentication on.
        timeout: deadline in seconds of every unary call.
        store: store URL of the embedded coordinator (default SQLite under ``$FAULTLAB_HOME``).
        num_cpus: CPUs of the embedded coordinator's local Ray (default: all).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        store: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        self.embedded = address is None
        if address is None:
            address = _embedded(store or default_store_url(), num_cpus)
        self.address = address
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self._stub = pb_grpc.FaultlabStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None = None) -> T:
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _translate(exc, self.address) from None

    # --- campaigns -------------------------------------------------------------------
    def submit(
        self,
        spec: CampaignSpec | dict[str, Any] | str | Path,
        *,
        request_id: str | None = None,
        retries: int = 3,
    ) -> CampaignHandle:
        """Validates the spec locally, then submits it. Retries on UNAVAILABLE are safe: the
        request id makes the submission idempotent."""
        parsed = parse_spec(spec)
        request = pb.SubmitCampaignRequest(
            spec=parsed.to_json(), request_id=request_id or uuid.uuid4().hex
        )
        for attempt in range(retries + 1):
            try:
                msg = self._call(self._stub.SubmitCampaign, request)
                return CampaignHandle(self, msg.id)
            except UnavailableError:
                if attempt == retries:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def get(self, campaign_id: str) -> CampaignHandle:
        """A handle on an existing campaign (NotFoundError if there is none)."""
        self._call(self._stub.GetCampaign, pb.GetCampaignRequest(campaign_id=campaign_id))
        return CampaignHandle(self, campaign_id)

    def list(self, limit: int | None = None, page_size: int = 100) -> list[CampaignStatus]:
        """Campaigns of this tenant, newest first."""
        out: list[CampaignStatus] = []
        token = ""
        while True:
            resp = self._call(
                self._stub.ListCampaigns,
                pb.ListCampaignsRequest(page_size=page_size, page_token=token),
            )
            out += [CampaignStatus.from_message(m) for m in resp.campaigns]
            token = resp.next_page_token
            if not token or (limit is not None and len(out) >= limit):
                return out[:limit] if limit is not None else out


def _translate(exc: grpc.RpcError, address: str) -> FaultlabError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details.lower():
        details = f"coordinator at {address} is unreachable ({details})"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UnavailableError(f"coordinator at {address} did not answer in time")
    return error_from_status(code, details)


class CampaignHandle:
    """A submitted campaign: status, live events, results, report, cancel."""

    def __init__(self, client: Client, campaign_id: str) -> None:
        self.client = client
        self.id = campaign_id

    def __repr__(self) -> str:
        return f"CampaignHandle({self.id!r})"

    def status(self) -> CampaignStatus:
        msg = self.client._call(
            self.client._stub.GetCampaign, pb.GetCampaignRequest(campaign_id=self.id)
        )
        return CampaignStatus.from_message(msg)

    describe = status

    def cancel(self) -> CampaignStatus:
        """Stops the campaign's Ray tasks; the campaign ends CANCELLED."""
        msg = self.client._call(
            self.client._stub.CancelCampaign, pb.CancelCampaignRequest(campaign_id=self.id)
        )
        return CampaignStatus.from_message(msg)

    def events(self, cursor: str = "", *, reconnect: int = 5) -> Iterator[Event]:
        """The event log after ``cursor``, live; ends once the campaign is terminal and drained.

        A dropped stream is resumed from the last cursor seen (nothing missed, nothing doubled);
        keep ``event.cursor`` to resume later from another process.
        """
        attempts = 0
        while True:
            request = pb.StreamEventsRequest(campaign_id=self.id, cursor=cursor)
            try:
                stream = self.client._stub.StreamEvents(request, metadata=self.client._metadata)
                for msg in stream:
                    attempts = 0
                    cursor = msg.cursor
                    yield Event.from_message(msg)
                return
            except grpc.RpcError as exc:
                err = _translate(exc, self.client.address)
                if isinstance(err, UnavailableError) and attempts < reconnect:
                    attempts += 1
                    time.sleep(min(0.2 * 2**attempts, 5.0))
                    continue
                raise err from None

    def wait(
        self, *, progress: bool = False, timeout: float | None = None, raise_on_failure: bool = True
    ) -> CampaignStatus:
        """Blocks until the campaign is terminal, optionally with a live progress bar.

        Raises CampaignFailedError / CampaignCancelledError unless ``raise_on_failure`` is False.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if progress:
            self._follow_with_progress(deadline)
        else:
            pause = 0.02  # short campaigns (e.g. answered from the cache) return promptly
            while True:
                status = self.status()
                if status.state.is_terminal():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"campaign {self.id} still {status.state.value}")
                time.sleep(pause)
                pause = min(pause * 1.25, 0.25)
        status = self.status()
        if raise_on_failure and status.state is CampaignState.FAILED:
            raise CampaignFailedError(self.id, status.error)
        if raise_on_failure and status.state is CampaignState.CANCELLED:
            raise CampaignCancelledError(self.id)
        return status

    def _follow_with_progress(self, deadline: float | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        status = self.status()
        with Progress(
            "[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
            "[dim]{task.fields[state]}", TimeElapsedColumn(), transient=False,
        ) as bar:
            task = bar.add_task(f"{status.kind} {self.id}", total=status.trials_total or None,
                                completed=status.trials_done, state=status.state.value)
            for event in self.events():
                if event.type == "progress":
                    bar.update(task, total=event.data["total"] or None,
                               completed=event.data["done"])
                elif event.type == "state":
                    bar.update(task, state=event.data["state"])
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"campaign {self.id} did not finish in time")

    def results(self, page_size: int = 500) -> Results:
        """Every finished trial record (fetched page by page)."""
        records: list[dict[str, Any]] = []
        token = ""
        while True:
            page = self.client._call(
                self.client._stub.GetResults,
                pb.GetResultsRequest(campaign_id=self.id, page_size=page_size, page_token=token),
            )
            records += [
                {"key": r.key, "trial": json.loads(r.trial_json),
                 "result": json.loads(r.result_json), "attempts": r.attempts}
                for r in page.records
            ]
            token = page.next_page_token
            if not token:
                return Results(self.id, records)

    def report(self) -> Report:
        """The engine's aggregate report (tables with CIs, summary, provenance)."""
        msg = self.client._call(
            self.client._stub.GetReport, pb.GetReportRequest(campaign_id=self.id),
            timeout=max(self.client.timeout, 120.0),
        )
        return Report.from_json(msg.report_json)

    def replay(self, trial_key: str) -> ReplayResult:
        """Re-runs one stored trial on a worker and compares the outcome with the stored one."""
        msg = self.client._call(
            self.client._stub.ReplayTrial,
            pb.ReplayTrialRequest(campaign_id=self.id, trial_key=trial_key),
            timeout=max(self.client.timeout, 300.0),
        )
        return ReplayResult(json.loads(msg.trial_json), json.loads(msg.stored_result_json),
                            json.loads(msg.replayed_result_json), msg.identical)
