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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from faultlab.client._artifacts import attach_objects, bytes_digest, file_digest, localize_spec
from faultlab.client._errors import translate
from faultlab.client._models import CampaignStatus, Event, ReplayResult, Results
from faultlab.client._results_fetch import fetch_results
from faultlab.errors import (
    CampaignCancelledError,
    CampaignFailedError,
    NotFoundError,
    UnavailableError,
)
from faultlab.paths import embedded_store_path
from faultlab.report import Report
from faultlab.spec import CampaignSpec, parse_spec
from faultlab.spec_text import load_spec_text, read_spec_file
from faultlab.states import CampaignState
from faultlab.v1 import faultlab_pb2 as pb
from faultlab.v1 import faultlab_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from faultlab.client.compare import Comparison

T = TypeVar("T")

UPLOAD_CHUNK = 1 << 20
"""Bytes per upload message (the coordinator accepts at most 1 MiB per message)."""

_EMBEDDED: dict[str, Any] = {}
_EMBEDDED_LOCK = threading.Lock()


def default_store_url() -> str:
    """The embedded store: ``sqlite:///$FAULTLAB_HOME/faultlab.db``."""
    return f"sqlite://{embedded_store_path()}"


def _embedded(store_url: str, num_cpus: int | None) -> str:
    with _EMBEDDED_LOCK:
        if store_url not in _EMBEDDED:
            from faultlab.server.app import EmbeddedServer
            from faultlab.server.config import CoordinatorConfig

            # In-process: the user's own code is already running here, so any factory may be.
            config = CoordinatorConfig(num_cpus=num_cpus, allow_factory=("*",))
            server = EmbeddedServer(store_url, config=config)
            _EMBEDDED[store_url] = server
            atexit.register(server.stop)
        return str(_EMBEDDED[store_url].address)


def _channel(address: str, *, tls: bool, ca: str | Path | None, embedded: bool) -> grpc.Channel:
    """A channel to ``address``: TLS when asked for (or ``FAULTLAB_TLS``/``FAULTLAB_CA``);
    the embedded coordinator listens on localhost without TLS."""
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    ca = ca or os.environ.get("FAULTLAB_CA") or None
    wanted = tls or ca or os.environ.get("FAULTLAB_TLS", "") in ("1", "true", "yes")
    if embedded or not wanted:
        return grpc.insecure_channel(address, options=options)
    roots = Path(ca).read_bytes() if ca else None
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(roots), options=options)


def _spec_data(spec: CampaignSpec | dict[str, Any] | str | Path) -> tuple[dict[str, Any], Path]:
    """The spec as a plain dict, and the folder its relative ``file`` paths start from."""
    if isinstance(spec, str) and len(spec) < 4096 and "\n" not in spec and Path(spec).is_file():
        spec = Path(spec)  # a file on the client; spec text is never read as a path
    if isinstance(spec, Path):
        return read_spec_file(spec), spec.resolve().parent
    if isinstance(spec, CampaignSpec):
        return spec.to_dict(), Path.cwd()
    if isinstance(spec, dict):
        return dict(spec), Path.cwd()
    return load_spec_text(spec), Path.cwd()


class Client:
    """Connection to a faultlab coordinator.

    Args:
        address: ``host:port`` of a coordinator; ``None`` starts an embedded one.
        token: bearer token when the coordinator has authentication on.
        timeout: deadline in seconds of every unary call.
        store: store URL of the embedded coordinator (default SQLite under ``$FAULTLAB_HOME``).
        num_cpus: CPUs of the embedded coordinator's local Ray (default: all).
        tls: connect over TLS, trusting the system's certificate authorities (env
            ``FAULTLAB_TLS=1``).
        ca: PEM file of the authority that signed the coordinator's certificate (implies
            ``tls``; env ``FAULTLAB_CA``).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        store: str | None = None,
        num_cpus: int | None = None,
        tls: bool = False,
        ca: str | Path | None = None,
    ) -> None:
        self.embedded = address is None
        if address is None:
            address = _embedded(store or default_store_url(), num_cpus)
        self.address = address
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._channel = _channel(address, tls=tls, ca=ca, embedded=self.embedded)
        self._stub = pb_grpc.FaultlabStub(self._channel)
        self.last_upload_bytes = 0
        """Bytes the last :meth:`upload` or :meth:`submit` sent (0: the coordinator had all)."""

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
            raise translate(exc, self.address) from None

    # --- artifacts -------------------------------------------------------------------
    def upload(self, source: str | Path | bytes) -> str:
        """Uploads a file (a path on this machine) or bytes unless the coordinator already has
        them for this tenant; returns the ``sha256:…`` digest a spec refers to them by.
        ``last_upload_bytes`` says how many bytes were sent (0 when nothing was)."""
        content: Path | bytes = source if isinstance(source, bytes) else Path(source)
        digest = bytes_digest(content) if isinstance(content, bytes) else file_digest(content)
        self.last_upload_bytes = self._upload(digest, content)
        return digest

    def _upload(self, digest: str, content: Path | bytes) -> int:
        """Sends one artifact unless StatArtifact finds it; returns the bytes sent."""
        try:
            self._call(self._stub.StatArtifact, pb.StatArtifactRequest(sha256=digest))
            return 0
        except NotFoundError:
            pass
        size = len(content) if isinstance(content, bytes) else content.stat().st_size
        name = "" if isinstance(content, bytes) else content.name

        def messages() -> Iterator[pb.UploadArtifactRequest]:
            header = pb.ArtifactHeader(sha256=digest, size=size, name=name)
            yield pb.UploadArtifactRequest(header=header)
            if isinstance(content, bytes):
                for start in range(0, size, UPLOAD_CHUNK):
                    yield pb.UploadArtifactRequest(chunk=content[start : start + UPLOAD_CHUNK])
                return
            with content.open("rb") as f:
                while chunk := f.read(UPLOAD_CHUNK):
                    yield pb.UploadArtifactRequest(chunk=chunk)

        # The deadline grows with the size (at least 10 MB/s), never below the unary one.
        self._call(self._stub.UploadArtifact, messages(), timeout=self.timeout + size / 1e7)
        return size

    # --- campaigns -------------------------------------------------------------------
    def submit(
        self,
        spec: CampaignSpec | dict[str, Any] | str | Path,
        *,
        model: Any = None,
        example_inputs: Any = None,
        dataset: Any = None,
        request_id: str | None = None,
        retries: int = 3,
    ) -> CampaignHandle:
        """Validates the spec locally, uploads what it needs, then submits it.

        ``spec`` is a spec, a dict, YAML/JSON text or a spec file (a ``Path``, or a one-line
        ``str`` naming an existing file). Its ``model.file`` / ``dataset.file`` are paths on
        this machine, relative to the spec file's folder (else the working directory);
        ``model=`` (an ``nn.Module``, exported with ``example_inputs``) and ``dataset=``
        (``(x_train, y_train, x_test, y_test)`` or a PyG ``Data``) replace the spec's model and
        dataset. Each file is uploaded unless the coordinator has it (``last_upload_bytes``
        counts what was sent), and the coordinator receives the spec with ``sha256:`` digests.
        Retries on UNAVAILABLE are safe: the request id makes the submission idempotent."""
        data, base_dir = _spec_data(spec)
        data, uploads = attach_objects(data, model=model, example_inputs=example_inputs,
                                       dataset=dataset)
        data, files = localize_spec(data, base_dir)
        parsed = parse_spec(data)
        self.last_upload_bytes = sum(
            self._upload(digest, content) for digest, content in {**uploads, **files}.items()
        )
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

    def validate(self, spec: CampaignSpec | dict[str, Any] | str | Path) -> CampaignSpec:
        """Checks ``spec`` on the coordinator as a submission (deep), submitting nothing."""
        data, files = localize_spec(*_spec_data(spec))
        request = pb.SubmitCampaignRequest(spec=parse_spec(data).to_json(), validate_only=True)
        for digest, content in files.items():
            self._upload(digest, content)
        return parse_spec(self._call(self._stub.SubmitCampaign, request).spec_json)

    def compare(self, *campaign_ids: str, **options: Any) -> Comparison:
        """Each campaign minus the first (:func:`faultlab.client.compare.compare`)."""
        from faultlab.client.compare import compare

        return compare([self.get(i) for i in campaign_ids], **options)

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


def curve_line(data: dict[str, Any]) -> str:
    """One line of a live curve event: the trial key's prefix and the point's numbers."""
    point = data.get("point", {})
    values = point.get("curve", point)
    numbers = " ".join(f"{k} {v:.4g}" for k, v in values.items() if isinstance(v, int | float))
    return f"{str(data.get('key', ''))[:12]}  {numbers}"


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
        """Ends the campaign CANCELLED now: no further shard starts, and what the shards
        already running return is dropped."""
        msg = self.client._call(
            self.client._stub.CancelCampaign, pb.CancelCampaignRequest(campaign_id=self.id)
        )
        return CampaignStatus.from_message(msg)

    def events(self, cursor: str = "", *, types: Sequence[str] = (), reconnect: int = 5
               ) -> Iterator[Event]:
        """The event log after ``cursor``, live; ends once the campaign is terminal and drained.

        ``types`` (``"state"``, ``"progress"``, ``"trial"``, ``"log"``, ``"curve"``; empty:
        all) delivers only those, state changes always. A dropped stream is resumed from the
        last cursor seen (nothing missed, nothing doubled); keep ``event.cursor`` to resume
        later from another process.
        """
        attempts, stub, metadata = 0, self.client._stub, self.client._metadata
        while True:
            request = pb.StreamEventsRequest(campaign_id=self.id, cursor=cursor, types=types)
            try:
                for batch in stub.StreamEventBatches(request, metadata=metadata):
                    attempts = 0
                    for msg in batch.events:  # what was ready at one wake-up
                        cursor = msg.cursor
                        yield Event.from_message(msg)
                return
            except grpc.RpcError as exc:
                err = translate(exc, self.client.address)
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
            for event in self.events(types=("state", "progress", "curve")):
                if event.type == "progress":
                    bar.update(task, total=event.data["total"] or None,
                               completed=event.data["done"])
                elif event.type == "state":
                    bar.update(task, state=event.data["state"])
                elif event.type == "curve":  # a live learning-curve point of a running trial
                    bar.console.print(curve_line(event.data), highlight=False)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"campaign {self.id} did not finish in time")

    def results(self, page_size: int | None = None) -> Results:
        """Every finished trial record, fetched page by page (the stored JSON kept as text; the
        next page is fetched while the current one is parsed). ``page_size``: rows per request
        (``None``: as many as fit in one message)."""
        return fetch_results(self.client, self.id, page_size)

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
