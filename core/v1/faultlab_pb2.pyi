from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CampaignState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMPAIGN_STATE_UNSPECIFIED: _ClassVar[CampaignState]
    QUEUED: _ClassVar[CampaignState]
    RUNNING: _ClassVar[CampaignState]
    SUCCEEDED: _ClassVar[CampaignState]
    FAILED: _ClassVar[CampaignState]
    CANCELLED: _ClassVar[CampaignState]
CAMPAIGN_STATE_UNSPECIFIED: CampaignState
QUEUED: CampaignState
RUNNING: CampaignState
SUCCEEDED: CampaignState
FAILED: CampaignState
CANCELLED: CampaignState

class Campaign(_message.Message):
    __slots__ = ("id", "name", "kind", "state", "owner", "spec_json", "spec_hash", "seed", "code_version", "trials_total", "trials_done", "trials_cached", "trials_failed", "created_at", "updated_at", "error", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEC_HASH_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CODE_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIALS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    TRIALS_DONE_FIELD_NUMBER: _ClassVar[int]
    TRIALS_CACHED_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FAILED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: str
    state: CampaignState
    owner: str
    spec_json: str
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
    request_id: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[CampaignState, str]] = ..., owner: _Optional[str] = ..., spec_json: _Optional[str] = ..., spec_hash: _Optional[str] = ..., seed: _Optional[int] = ..., code_version: _Optional[str] = ..., trials_total: _Optional[int] = ..., trials_done: _Optional[int] = ..., trials_cached: _Optional[int] = ..., trials_failed: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., error: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitCampaignRequest(_message.Message):
    __slots__ = ("spec", "request_id", "validate_only")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    spec: str
    request_id: str
    validate_only: bool
    def __init__(self, spec: _Optional[str] = ..., request_id: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class GetCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class ListCampaignsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCampaignsResponse(_message.Message):
    __slots__ = ("campaigns", "next_page_token")
    CAMPAIGNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    campaigns: _containers.RepeatedCompositeFieldContainer[Campaign]
    next_page_token: str
    def __init__(self, campaigns: _Optional[_Iterable[_Union[Campaign, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelCampaignRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("campaign_id", "cursor", "keep_open_after_terminal", "types")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KEEP_OPEN_AFTER_TERMINAL_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    cursor: str
    keep_open_after_terminal: bool
    types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, campaign_id: _Optional[str] = ..., cursor: _Optional[str] = ..., keep_open_after_terminal: _Optional[bool] = ..., types: _Optional[_Iterable[str]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("cursor", "campaign_id", "time", "state", "progress", "trial", "log", "curve")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    CURVE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    campaign_id: str
    time: float
    state: StateChange
    progress: Progress
    trial: TrialDone
    log: LogLine
    curve: CurvePoint
    def __init__(self, cursor: _Optional[str] = ..., campaign_id: _Optional[str] = ..., time: _Optional[float] = ..., state: _Optional[_Union[StateChange, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., trial: _Optional[_Union[TrialDone, _Mapping]] = ..., log: _Optional[_Union[LogLine, _Mapping]] = ..., curve: _Optional[_Union[CurvePoint, _Mapping]] = ...) -> None: ...

class CurvePoint(_message.Message):
    __slots__ = ("key", "point_json")
    KEY_FIELD_NUMBER: _ClassVar[int]
    POINT_JSON_FIELD_NUMBER: _ClassVar[int]
    key: str
    point_json: str
    def __init__(self, key: _Optional[str] = ..., point_json: _Optional[str] = ...) -> None: ...

class StateChange(_message.Message):
    __slots__ = ("state", "message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: CampaignState
    message: str
    def __init__(self, state: _Optional[_Union[CampaignState, str]] = ..., message: _Optional[str] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("done", "total", "cached", "failed")
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    done: int
    total: int
    cached: int
    failed: int
    def __init__(self, done: _Optional[int] = ..., total: _Optional[int] = ..., cached: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class TrialDone(_message.Message):
    __slots__ = ("key", "trial_json", "result_json", "cached")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TRIAL_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    key: str
    trial_json: str
    result_json: str
    cached: bool
    def __init__(self, key: _Optional[str] = ..., trial_json: _Optional[str] = ..., result_json: _Optional[str] = ..., cached: _Optional[bool] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("level", "message")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    level: str
    message: str
    def __init__(self, level: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetResultsRequest(_message.Message):
    __slots__ = ("campaign_id", "page_size", "page_token")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    page_size: int
    page_token: str
    def __init__(self, campaign_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class TrialRecord(_message.Message):
    __slots__ = ("key", "trial_json", "result_json", "attempts")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TRIAL_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    trial_json: str
    result_json: str
    attempts: int
    def __init__(self, key: _Optional[str] = ..., trial_json: _Optional[str] = ..., result_json: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class ResultPage(_message.Message):
    __slots__ = ("records", "next_page_token", "total")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[TrialRecord]
    next_page_token: str
    total: int
    def __init__(self, records: _Optional[_Iterable[_Union[TrialRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("campaign_id",)
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    def __init__(self, campaign_id: _Optional[str] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("report_json",)
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    report_json: str
    def __init__(self, report_json: _Optional[str] = ...) -> None: ...

class ReplayTrialRequest(_message.Message):
    __slots__ = ("campaign_id", "trial_key")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_KEY_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    trial_key: str
    def __init__(self, campaign_id: _Optional[str] = ..., trial_key: _Optional[str] = ...) -> None: ...

class ReplayTrialResponse(_message.Message):
    __slots__ = ("trial_json", "stored_result_json", "replayed_result_json", "identical")
    TRIAL_JSON_FIELD_NUMBER: _ClassVar[int]
    STORED_RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    IDENTICAL_FIELD_NUMBER: _ClassVar[int]
    trial_json: str
    stored_result_json: str
    replayed_result_json: str
    identical: bool
    def __init__(self, trial_json: _Optional[str] = ..., stored_result_json: _Optional[str] = ..., replayed_result_json: _Optional[str] = ..., identical: _Optional[bool] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("sha256", "size", "owner", "created_at", "name")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    owner: str
    created_at: float
    name: str
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ..., owner: _Optional[str] = ..., created_at: _Optional[float] = ..., name: _Optional[str] = ...) -> None: ...

class ArtifactHeader(_message.Message):
    __slots__ = ("sha256", "size", "name")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    name: str
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class UploadArtifactRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: ArtifactHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[ArtifactHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class StatArtifactRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...
