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
* ``P:campaign:ID:done`` — sorted set of the DONE keys scored by plan index, written by the
  same script that marks them DONE: a page of results reads only its own trials.
* ``P:result:KEY`` — string, the content-addressed result, shared by every campaign.
* ``P:campaign:ID:events`` — stream; the cursor is the stream entry id, entries carry
  ``time`` and ``data`` (JSON).
* ``P:artifacts:OWNER``, ``P:artifact_usage``, ``P:blob:BLOB`` — uploaded artifacts
  (``redis_artifacts.py``).
* ``P:lease`` / ``P:lease_token`` — the coordinator lease and its fencing-token counter
  (``redis_fencing.py``, which also holds the event reads and appends).

Atomicity: every write that touches more than one key is one Lua script
(``redis_scripts.py``), which Redis runs with no other command interleaved. (Redis does not
undo a script that fails half-way; these read only values that they wrote themselves, so they
have no reason to fail.)
Client retries are off: re-sending a script whose reply was lost could turn a successful
transition into a reported failure, so a dropped connection surfaces as
:class:`~faultlab.errors.UnavailableError` instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Collection, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgpack  # type: ignore[import-untyped]
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from faultlab.events import StateEvent, encode_event
from faultlab.server.store import redis_scripts as lua
from faultlab.server.store.base import (
    CampaignRecord,
    ResultItem,
    ResultText,
    Store,
    TrialRow,
    active_limit_reached,
    leavable_states,
)
from faultlab.server.store.redis_artifacts import RedisArtifacts
from faultlab.server.store.redis_codec import (
    decode_campaign,
    encode_campaign,
    redacted,
    trial_row,
)
from faultlab.server.store.redis_fencing import RedisFencing
from faultlab.states import CampaignState, TrialState

DEFAULT_PREFIX = "faultlab"
_CONNECT_TIMEOUT_S = 2.0
_SOCKET_TIMEOUT_S = 10.0

_ATTEMPTS = re.compile(r'"attempts":\s*(\d+)')
"""The ``attempts`` field of a trial's state JSON (a page's states are matched at once)."""

# Reply shape with ``decode_responses=True`` (redis-py types it as bytes | str).
_Hash = dict[str, str]


class RedisStore(RedisFencing, RedisArtifacts, Store):
    """The store in one Redis database, under a key prefix (see the module docstring)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.prefix = next((v for k, v in query if k == "prefix" and v), DEFAULT_PREFIX)
        self.url = redacted(url)
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
        script = self._redis.register_script
        self._create = script(lua.fenced(lua.CREATE))
        self._transition = script(lua.fenced(lua.TRANSITION))
        self._set_meta = script(lua.fenced(lua.SET_META))
        self._add_trials = script(lua.fenced(lua.ADD_TRIALS, active_only=True))
        self._mark_running = script(lua.fenced(lua.MARK_RUNNING, active_only=True))
        self._mark_failed = script(lua.fenced(lua.MARK_FAILED, active_only=True))
        self._reset_running = script(lua.fenced(lua.RESET_RUNNING))
        self._record_results = script(lua.fenced(lua.RECORD_RESULTS, active_only=True))
        self._result_page = script(lua.RESULT_PAGE)
        self._open_artifacts(client_url, _CONNECT_TIMEOUT_S, _SOCKET_TIMEOUT_S)
        self._open_fencing(client_url, _CONNECT_TIMEOUT_S, _SOCKET_TIMEOUT_S)

    # --- keys ------------------------------------------------------------------------
    def _campaign_key(self, campaign_id: str, part: str = "") -> str:
        key = f"{self.prefix}:campaign:{campaign_id}"
        return f"{key}:{part}" if part else key

    def _result_key(self, key: str) -> str:
        return f"{self.prefix}:result:{key}"

    # --- campaigns -------------------------------------------------------------------
    def create_campaign(
        self, record: CampaignRecord, max_active: int | None = None
    ) -> tuple[CampaignRecord, bool]:
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
        event = encode_event(StateEvent(record.state))
        flat = [x for pair in encode_campaign(record).items() for x in pair]
        created, campaign_id = self._run(
            self._create,
            [
                self._campaign_key(record.id),
                f"{self.prefix}:campaigns",
                f"{self.prefix}:owner:{record.owner}",
                f"{self.prefix}:active",
                f"{self.prefix}:requests:{record.owner}",
                self._campaign_key(record.id, "events"),
            ],
            [
                record.id, record.request_id, repr(record.created_at), repr(now), event,
                record.owner, "" if max_active is None else str(max_active),
                f"{self.prefix}:campaign:", *flat,
            ],
        )
        if created == 1:
            return record, True
        if created == -1:
            assert max_active is not None  # the script counts only when given a limit
            raise active_limit_reached(record.owner, max_active)
        existing = self.get_campaign(campaign_id)
        assert existing is not None  # campaigns are never deleted
        return existing, False

    def get_campaign(self, campaign_id: str) -> CampaignRecord | None:
        with self._reachable():
            fields = cast(_Hash, self._redis.hgetall(self._campaign_key(campaign_id)))
        return decode_campaign(fields) if fields else None

    def _campaigns(self, ids: Sequence[str]) -> list[CampaignRecord]:
        with self._reachable():
            pipe = self._redis.pipeline(transaction=False)
            for campaign_id in ids:
                pipe.hgetall(self._campaign_key(campaign_id))
            found: list[_Hash] = pipe.execute()
        return [decode_campaign(fields) for fields in found if fields]

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
        event = encode_event(StateEvent(new, message))
        changed = self._run(
            self._transition,
            [
                self._campaign_key(campaign_id),
                f"{self.prefix}:active",
                self._campaign_key(campaign_id, "events"),
            ],
            [
                campaign_id, new.value, error, repr(now), event,
                "1" if new.is_terminal() else "0", *states,
            ],
        )
        return bool(changed)

    def set_meta(self, campaign_id: str, meta_json: str) -> None:
        self._run(self._set_meta, [self._campaign_key(campaign_id)], [meta_json, repr(time.time())])

    # --- trials ----------------------------------------------------------------------
    def add_trials(
        self, campaign_id: str, round_index: int, trials: Sequence[tuple[str, dict[str, Any]]]
    ) -> int:
        if not trials:
            return 0
        flat = [x for key, trial in trials for x in (key, json.dumps(trial))]
        added = self._run(
            self._add_trials,
            [
                self._campaign_key(campaign_id),
                self._campaign_key(campaign_id, "trials"),
                self._campaign_key(campaign_id, "trial_data"),
            ],
            [round_index, repr(time.time()), *flat],
        )
        return int(added)

    def _trial_rows(self, campaign_id: str) -> list[TrialRow]:
        """Every trial of the campaign in plan order, read in one transaction."""
        with self._reachable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(self._campaign_key(campaign_id, "trials"))
            pipe.hgetall(self._campaign_key(campaign_id, "trial_data"))
            states, data = pipe.execute()
        rows = [trial_row(key, state, data[key]) for key, state in states.items()]
        return sorted(rows, key=lambda row: row.index)

    def trials(
        self, campaign_id: str, states: Collection[TrialState] | None = None
    ) -> list[TrialRow]:
        rows = self._trial_rows(campaign_id)
        if states is None:
            return rows
        wanted = {TrialState(s) for s in states}
        return [row for row in rows if row.state in wanted]

    def trial(self, campaign_id: str, key: str) -> TrialRow | None:
        with self._reachable():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hget(self._campaign_key(campaign_id, "trials"), key)
            pipe.hget(self._campaign_key(campaign_id, "trial_data"), key)
            state, data = pipe.execute()
        return None if state is None or data is None else trial_row(key, state, data)

    def done_keys(self, campaign_id: str) -> set[str]:
        with self._reachable():
            keys = self._redis.zrange(self._campaign_key(campaign_id, "done"), 0, -1)
        return set(cast(list[str], keys))

    def mark_running(self, campaign_id: str, keys: Sequence[str]) -> None:
        if not keys:
            return
        self._run(
            self._mark_running,
            [self._campaign_key(campaign_id), self._campaign_key(campaign_id, "trials")],
            list(keys),
        )

    def mark_failed(self, campaign_id: str, keys: Sequence[str], error: str) -> None:
        if not keys:
            return
        self._run(
            self._mark_failed,
            [self._campaign_key(campaign_id), self._campaign_key(campaign_id, "trials")],
            [error, repr(time.time()), *keys],
        )

    def reset_running(self, campaign_id: str) -> int:
        reset = self._run(self._reset_running, [self._campaign_key(campaign_id, "trials")], [])
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
        new = self._run(
            self._record_results,
            [
                self._campaign_key(campaign_id),
                self._campaign_key(campaign_id, "trials"),
                self._campaign_key(campaign_id, "trial_data"),
                self._campaign_key(campaign_id, "events"),
                self._campaign_key(campaign_id, "done"),
                *(self._result_key(item.key) for item in items),
            ],
            args,
        )
        return int(new)

    def campaign_results(
        self, campaign_id: str, offset: int = 0, limit: int | None = None
    ) -> list[tuple[TrialRow, dict[str, Any]]]:
        start = max(offset, 0)
        if limit is not None and limit <= 0:
            return []
        stop = -1 if limit is None else start + limit - 1
        with self._reachable():
            keys = cast(
                list[str], self._redis.zrange(self._campaign_key(campaign_id, "done"), start, stop)
            )
            if not keys:
                return []
            pipe = self._redis.pipeline(transaction=True)
            pipe.hmget(self._campaign_key(campaign_id, "trials"), keys)
            pipe.hmget(self._campaign_key(campaign_id, "trial_data"), keys)
            pipe.mget([self._result_key(key) for key in keys])
            states, data, results = pipe.execute()
        return [
            (trial_row(key, state, trial), json.loads(result))
            for key, state, trial, result in zip(keys, states, data, results, strict=True)
        ]

    def result_texts(
        self, campaign_id: str, start_index: int = 0, limit: int = 500
    ) -> list[ResultText]:
        if limit <= 0:
            return []
        with self._reachable():  # one script, one reply: O(log n + page) in Redis
            reply = self._result_page(  # msgpack bytes: read by a client that decodes nothing
                keys=[self._campaign_key(campaign_id, part)
                      for part in ("done", "trials", "trial_data")],
                args=[max(start_index, 0), limit, self._result_key("")], client=self._blobs,
            )
        found, states, trials, results = msgpack.unpackb(reply, raw=False)
        keys, indexes = found[::2], found[1::2]
        if False in states or False in trials or False in results:  # deleted meanwhile
            kept = [i for i, texts in enumerate(zip(states, trials, results, strict=True))
                    if False not in texts]
            keys, indexes, states, trials, results = (
                [part[i] for i in kept] for part in (keys, indexes, states, trials, results))
        attempts = _ATTEMPTS.findall("\x1e".join(states))  # one per state
        if len(attempts) != len(keys):
            attempts = [str(json.loads(state)["attempts"]) for state in states]
        return [ResultText(key, int(float(index)), int(n), trial, result)
                for key, index, n, trial, result
                in zip(keys, indexes, attempts, trials, results, strict=True)]

    # --- lifecycle -------------------------------------------------------------------
    def ping(self) -> None:
        with self._reachable():
            self._redis.ping()

    def close(self) -> None:
        self._redis.close()
        self._close_artifacts()
        self._close_fencing()
