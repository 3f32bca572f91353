"""Redis store: the cluster backend, shared by every coordinator replica and tenant.

URL: ``redis://[user:password@]host:port/db[?prefix=NAME]``; every key starts with the
prefix (default ``faultlab``), so several deployments can share one server.

Layout (``P`` = prefix, ``ID`` = campaign id):

* ``P:campaign:ID`` — hash, the :class:`CampaignRecord` fields (counters included).
* ``P:campaigns`` / ``P:owner:OWNER`` / ``P:active`` — sorted sets of campaign ids scored by
  ``created_at``: every campaign, one tenant's, and the non-terminal ones (for recovery).
* ``P:requests:OWNER`` — hash ``request_id → ID`` that makes submission idempotent per tenant
  (a hash rather than one key per request, so an owner or request id containing ``:`` can
  never alias another tenant's).
* ``P:campaign:ID:trials`` — hash ``key → {"index","round","state","attempts","error"}``;
  ``index`` is the plan-order position, assigned from the hash length when the trial is
  added, so plan order needs no separate list.
* ``P:campaign:ID:trial_data`` — hash ``key → trial JSON`` (written once, never rewritten).
* ``P:result:KEY`` — string, the content-addressed result, shared by every campaign.
* ``P:campaign:ID:events`` — stream; the cursor is the stream entry id, entries carry
  ``time`` and ``data`` (JSON).

Atomicity: every write that touches more than one key is one Lua script, which Redis runs
with no other command interleaved. (Redis does not undo a script that fails half-way; these
read only values that they wrote themselves, so they have no reason to fail.) Trial and
result JSON are spliced into events as text, never decoded in Lua (cjson would round floats
to 14 digits).
Client retries are off: re-sending a script whose reply was lost could turn a successful
transition into a reported failure, so a dropped connection surfaces as
:class:`~faultlab.errors.UnavailableError` instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from faultlab.errors import SpecError, UnavailableError
from faultlab.server.store.base import (
    CampaignRecord,
    ResultItem,
    Store,
    StoredEvent,
    TrialRow,
    leavable_states,
)
from faultlab.states import CampaignState, TrialState

DEFAULT_PREFIX = "faultlab"
_CONNECT_TIMEOUT_S = 2.0
_SOCKET_TIMEOUT_S = 10.0
# A blocking XREAD must end before the socket timeout; longer waits loop.
_MAX_BLOCK_S = 5.0
_CURSOR = re.compile(r"\d+(-\d+)?")

# Reply shapes with ``decode_responses=True`` (redis-py types them as bytes | str).
_Hash = dict[str, str]
_StreamReply = list[tuple[str, list[tuple[str, _Hash]]]]

_CAMPAIGN_FIELDS = frozenset(f.name for f in dataclasses.fields(CampaignRecord))
_INT_FIELDS = ("seed", "trials_total", "trials_done", "trials_cached", "trials_failed")
_FLOAT_FIELDS = ("created_at", "updated_at")

# KEYS: campaign, campaigns, owner, active, requests, events
# ARGV: id, request_id, created_at, time, state event JSON, field, value, ...
_CREATE = """
if ARGV[2] ~= '' then
  local existing = redis.call('HGET', KEYS[5], ARGV[2])
  if existing then return {0, existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[1]} end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[5], ARGV[2], ARGV[1]) end
redis.call('XADD', KEYS[6], '*', 'time', ARGV[4], 'data', ARGV[5])
return {1, ARGV[1]}
"""

# KEYS: campaign, active, events
# ARGV: id, new state, error, time, state event JSON, '1' if new is terminal, expected...
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return 0 end
local allowed = false
for i = 7, #ARGV do
  if ARGV[i] == current then allowed = true end
end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated_at', ARGV[4])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
if ARGV[6] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('XADD', KEYS[3], '*', 'time', ARGV[4], 'data', ARGV[5])
return 1
"""

# KEYS: campaign; ARGV: meta JSON, time
_SET_META = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'meta_json', ARGV[1], 'updated_at', ARGV[2])
return 1
"""

# KEYS: campaign, trials, trial_data; ARGV: round, time, key, trial JSON, ...
_ADD_TRIALS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local round = tonumber(ARGV[1])
local next_index = redis.call('HLEN', KEYS[2])
local added = 0
for i = 3, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], cjson.encode({index = next_index + added,
      round = round, state = 'PENDING', attempts = 0, error = ''}))
    added = added + 1
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], 'trials_total', added)
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
end
return added
"""

# KEYS: campaign, trials; ARGV: key, ...
_MARK_RUNNING = """
local retried = 0
for i = 1, #ARGV do
  local raw = redis.call('HGET', KEYS[2], ARGV[i])
  if raw then
    local trial = cjson.decode(raw)
    if trial.state ~= 'DONE' then
      if trial.state == 'FAILED' then retried = retried + 1 end
      trial.state = 'RUNNING'
      trial.attempts = trial.attempts + 1
      redis.call('HSET', KEYS[2], ARGV[i], cjson.encode(trial))
    end
  end
end
if retried > 0 then redis.call('HINCRBY', KEYS[1], 'trials_failed', -retried) end
return 0
"""

# KEYS: campaign, trials; ARGV: error, time, key, ...
_MARK_FAILED = """
local newly_failed = 0
for i = 3, #ARGV do
  local raw = redis.call('HGET', KEYS[2], ARGV[i])
  if raw then
    local trial = cjson.decode(raw)
    if trial.state ~= 'DONE' then
      if trial.state ~= 'FAILED' then newly_failed = newly_failed + 1 end
      trial.state = 'FAILED'
      trial.error = ARGV[1]
      redis.call('HSET', KEYS[2], ARGV[i], cjson.encode(trial))
    end
  end
end
if newly_failed > 0 then
  redis.call('HINCRBY', KEYS[1], 'trials_failed', newly_failed)
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
end
return 0
"""

# KEYS: trials
_RESET_RUNNING = """
local flat = redis.call('HGETALL', KEYS[1])
local reset = 0
for i = 1, #flat, 2 do
  local trial = cjson.decode(flat[i + 1])
  if trial.state == 'RUNNING' then
    trial.state = 'PENDING'
    redis.call('HSET', KEYS[1], flat[i], cjson.encode(trial))
    reset = reset + 1
  end
end
return reset
"""

# KEYS: campaign, trials, trial_data, events, result key of item 1, result key of item 2, ...
# ARGV: time, then per item: key, result JSON, '1' if cached else '0'
_RECORD_RESULTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now = ARGV[1]
local new, cached, retried = 0, 0, 0
for i = 1, (#ARGV - 1) / 3 do
  local key, is_cached = ARGV[3 * i - 1], ARGV[3 * i + 1] == '1'
  local raw = redis.call('HGET', KEYS[2], key)
  if raw then
    local trial = cjson.decode(raw)
    if trial.state ~= 'DONE' then
      -- First write wins: every campaign reports the one stored result of a key.
      redis.call('SET', KEYS[4 + i], ARGV[3 * i], 'NX')
      local result = redis.call('GET', KEYS[4 + i])
      local spec = redis.call('HGET', KEYS[3], key)
      if trial.state == 'FAILED' then retried = retried + 1 end
      trial.state = 'DONE'
      if trial.attempts < 1 then trial.attempts = 1 end
      redis.call('HSET', KEYS[2], key, cjson.encode(trial))
      redis.call('XADD', KEYS[4], '*', 'time', now, 'data',
        '{"type":"trial","key":' .. cjson.encode(key) .. ',"trial":' .. spec ..
        ',"result":' .. result .. ',"cached":' .. (is_cached and 'true' or 'false') .. '}')
      new = new + 1
      if is_cached then cached = cached + 1 end
    end
  end
end
if new == 0 then return 0 end
local done = redis.call('HINCRBY', KEYS[1], 'trials_done', new)
local total_cached = redis.call('HINCRBY', KEYS[1], 'trials_cached', cached)
local failed = redis.call('HGET', KEYS[1], 'trials_failed')
if retried > 0 then failed = redis.call('HINCRBY', KEYS[1], 'trials_failed', -retried) end
local total = redis.call('HGET', KEYS[1], 'trials_total')
redis.call('HSET', KEYS[1], 'updated_at', now)
redis.call('XADD', KEYS[4], '*', 'time', now, 'data',
  '{"type":"progress","done":' .. done .. ',"total":' .. total .. ',"cached":' ..
  total_cached .. ',"failed":' .. failed .. '}')
return new
"""


def _redacted(url: str) -> str:
    """The URL without its password, fit for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _encode_campaign(record: CampaignRecord) -> dict[str, str]:
    values = dataclasses.asdict(record)
    values["state"] = record.state.value
    return {name: repr(v) if isinstance(v, float) else str(v) for name, v in values.items()}


def _decode_campaign(fields: dict[str, str]) -> CampaignRecord:
    values: dict[str, Any] = {k: v for k, v in fields.items() if k in _CAMPAIGN_FIELDS}
    for name in _INT_FIELDS:
        values[name] = int(values[name])
    for name in _FLOAT_FIELDS:
        values[name] = float(values[name])
    values["state"] = CampaignState(values["state"])
    return CampaignRecord(**values)


def _trial_row(key: str, state_json: str, trial_json: str) -> TrialRow:
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


class RedisStore(Store):
    """The store in one Redis database, under a key prefix (see the module docstring)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.prefix = next((v for k, v in query if k == "prefix" and v), DEFAULT_PREFIX)
        self.url = _redacted(url)
        client_url = urlunsplit(
            parts._replace(query=urlencode([(k, v) for k, v in query if k != "prefix"]))
        )
        self._redis = redis.Redis.from_url(
            client_url,
            decode_responses=True,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            socket_timeout=_SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._create = self._redis.register_script(_CREATE)
        self._transition = self._redis.register_script(_TRANSITION)
        self._set_meta = self._redis.register_script(_SET_META)
        self._add_trials = self._redis.register_script(_ADD_TRIALS)
        self._mark_running = self._redis.register_script(_MARK_RUNNING)
        self._mark_failed = self._redis.register_script(_MARK_FAILED)
        self._reset_running = self._redis.register_script(_RESET_RUNNING)
        self._record_results = self._redis.register_script(_RECORD_RESULTS)

    # --- keys ------------------------------------------------------------------------
    def _campaign_key(self, campaign_id: str, part: str = "") -> str:
        key = f"{self.prefix}:campaign:{campaign_id}"
        return f"{key}:{part}" if part else key

    def _result_key(self, key: str) -> str:
        return f"{self.prefix}:result:{key}"

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise UnavailableError(f"Redis store at {self.url} is unreachable: {exc}") from exc

    # --- campaigns -------------------------------------------------------------------
    def create_campaign(self, record: CampaignRecord) -> tuple[CampaignRecord, bool]:
        now = time.time()
        record = record.with_(
            state=CampaignState.QUEUED,
            created_at=record.created_at or now,
            updated_at=now,
            error="",
            trials_total=0,
            trials_done=0,
            trials_cached=0,
            trials_failed=0,
        )
        event = json.dumps({"type": "state", "state": record.state.value, "message": ""})
        flat = [x for pair in _encode_campaign(record).items() for x in pair]
        with self._reachable():
            created, campaign_id = self._create(
                keys=[
                    self._campaign_key(record.id),
                    f"{self.prefix}:campaigns",
                    f"{self.prefix}:owner:{record.owner}",
                    f"{self.prefix}:active",
                    f"{self.prefix}:requests:{record.owner}",
                    self._campaign_key(record.id, "events"),
                ],
                args=[
                    record.id,
                    record.request_id,
                    repr(record.created_at),
                    repr(now),
                    event,
                    *flat,
                ],
            )
            if created:
                return record, True
            existing = self.get_campaign(campaign_id)
        assert existing is not None  # campaigns are never deleted
        return existing, False

    def get_campaign(self, campaign_id: str) -> CampaignRecord | None:
        with self._reachable():
            fields = cast(_Hash, self._redis.hgetall(self._campaign_key(campaign_id)))
        return _decode_campaign(fields) if fields else None

    def _campaigns(self, ids: Sequence[str]) -> list[CampaignRecord]:
        with self._reachable():
            pipe = self._redis.pipeline(transaction=False)
            for campaign_id in ids:
                pipe.hgetall(self._campaign_key(campaign_id))
            found: list[_Hash] = pipe.execute()
        return [_decode_campaign(fields) for fields in found if fields]

    def list_campaigns(
        self, owner: str | None, limit: int, offset: int = 0
    ) -> list[CampaignRecord]:
        if limit <= 0:
            return []
        index = f"{self.prefix}:owner:{owner}" if owner is not None else f"{self.prefix}:campaigns"
        start = max(offset, 0)
        with self._reachable():
            # Ties in created_at fall back to the id, descending: the same order as SQLite.
            ids = cast(list[str], self._redis.zrevrange(index, start, start + limit - 1))
        return self._campaigns(ids)

    def active_campaigns(self) -> list[CampaignRecord]:
        with self._reachable():
            ids = cast(list[str], self._redis.zrange(f"{self.prefix}:active", 0, -1))
        return self._campaigns(ids)

    def transition(
        self,
        campaign_id: str,
        expected: Collection[CampaignState],
        new: CampaignState,
        *,
        error: str = "",
        message: str = "",
    ) -> bool:
        states = leavable_states(expected)
        if not states:
            return False
        now = time.time()
        event = json.dumps({"type": "state", "state": new.value, "message": message})
        with self._reachable():
            changed = self._transition(
                keys=[
                    self._campaign_key(campaign_id),
                    f"{self.prefix}:active",
                    self._campaign_key(campaign_id, "events"),
                ],
                args=[
                    campaign_id,
                    new.value,
                    error,
                    repr(now),
                    event,
                    "1" if new.is_terminal() else "0",
                    *states,
                ],
            )
        return bool(changed)

    def set_meta(self, campaign_id: str, meta_json: str) -> None:
        with self._reachable():
            self._set_meta(
                keys=[self._campaign_key(campaign_id)], args=[meta_json, repr(time.time())]
            )

    # --- trials ----------------------------------------------------------------------
    def add_trials(
        self, campaign_id: str, round_index: int, trials: Sequence[tuple[str, dict[str, Any]]]
    ) -> int:
        if not trials:
            return 0
        flat = [x for key, trial in trials for x in (key, json.dumps(trial))]
        with self._reachable():
            added = self._add_trials(
                keys=[
                    self._campaign_key(campaign_id),
                    self._campaign_key(campaign_id, "trials"),
                    self._campaign_key(campaign_id, "trial_data"),
                ],
                args=[round_index, repr(time.time()), *flat],
            )
        return int(added)

    def _trial_rows(self, campaign_id: str) -> list[TrialRow]:
        """Every trial of the campaign in plan order, read in one transaction."""
        with self._reachable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(self._campaign_key(campaign_id, "trials"))
            pipe.hgetall(self._campaign_key(campaign_id, "trial_data"))
            states, data = pipe.execute()
        rows = [_trial_row(key, state, data[key]) for key, state in states.items()]
        return sorted(rows, key=lambda row: row.index)

    def trials(
        self, campaign_id: str, states: Collection[TrialState] | None = None
    ) -> list[TrialRow]:
        rows = self._trial_rows(campaign_id)
        if states is None:
            return rows
        wanted = {TrialState(s) for s in states}
        return [row for row in rows if row.state in wanted]

    def mark_running(self, campaign_id: str, keys: Sequence[str]) -> None:
        if not keys:
            return
        with self._reachable():
            self._mark_running(
                keys=[self._campaign_key(campaign_id), self._campaign_key(campaign_id, "trials")],
                args=list(keys),
            )

    def mark_failed(self, campaign_id: str, keys: Sequence[str], error: str) -> None:
        if not keys:
            return
        with self._reachable():
            self._mark_failed(
                keys=[self._campaign_key(campaign_id), self._campaign_key(campaign_id, "trials")],
                args=[error, repr(time.time()), *keys],
            )

    def reset_running(self, campaign_id: str) -> int:
        with self._reachable():
            reset = self._reset_running(keys=[self._campaign_key(campaign_id, "trials")])
        return int(reset)

    # --- results ---------------------------------------------------------------------
    def lookup_results(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        with self._reachable():
            values = cast(list[str | None], self._redis.mget([self._result_key(k) for k in keys]))
        return {k: json.loads(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def record_results(self, campaign_id: str, items: Sequence[ResultItem]) -> int:
        if not items:
            return 0
        args: list[str] = [repr(time.time())]
        for item in items:
            args += [item.key, json.dumps(item.result), "1" if item.cached else "0"]
        with self._reachable():
            new = self._record_results(
                keys=[
                    self._campaign_key(campaign_id),
                    self._campaign_key(campaign_id, "trials"),
                    self._campaign_key(campaign_id, "trial_data"),
                    self._campaign_key(campaign_id, "events"),
                    *(self._result_key(item.key) for item in items),
                ],
                args=args,
            )
        return int(new)

    def campaign_results(
        self, campaign_id: str, offset: int = 0, limit: int | None = None
    ) -> list[tuple[TrialRow, dict[str, Any]]]:
        done = self.trials(campaign_id, [TrialState.DONE])
        start = max(offset, 0)
        page = done[start:] if limit is None else done[start : start + max(limit, 0)]
        if not page:
            return []
        with self._reachable():
            results = cast(list[str], self._redis.mget([self._result_key(row.key) for row in page]))
        return [(row, json.loads(result)) for row, result in zip(page, results, strict=True)]

    # --- events ----------------------------------------------------------------------
    def append_event(self, campaign_id: str, data: dict[str, Any]) -> str:
        with self._reachable():
            cursor = self._redis.xadd(
                self._campaign_key(campaign_id, "events"),
                {"time": repr(time.time()), "data": json.dumps(data)},
            )
        return str(cursor)

    def read_events(
        self, campaign_id: str, after: str = "", limit: int = 500, timeout: float = 0.0
    ) -> list[StoredEvent]:
        if after and not _CURSOR.fullmatch(after):
            raise SpecError("after", f"{after!r} is not an event cursor of this store")
        stream = self._campaign_key(campaign_id, "events")
        deadline = time.monotonic() + timeout
        with self._reachable():
            while True:
                block_ms = int(min(deadline - time.monotonic(), _MAX_BLOCK_S) * 1000)
                # BLOCK 0 would wait forever: a wait that has run out reads without blocking.
                reply = cast(
                    _StreamReply,
                    self._redis.xread(
                        {stream: after or "0-0"},
                        count=max(limit, 1),
                        block=block_ms if block_ms > 0 else None,
                    ),
                )
                if reply or block_ms <= 0:
                    break
        entries = reply[0][1] if reply else []
        return [
            StoredEvent(entry_id, float(fields["time"]), json.loads(fields["data"]))
            for entry_id, fields in entries
        ]

    # --- lifecycle -------------------------------------------------------------------
    def ping(self) -> None:
        with self._reachable():
            self._redis.ping()

    def close(self) -> None:
        self._redis.close()
