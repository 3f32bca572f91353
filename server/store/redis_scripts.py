"""Redis store: the Lua scripts, one per write that touches more than one key.

Redis runs a script with no other command interleaved, so each is atomic. The ``trial`` and
``progress`` events they append are spelled exactly as :meth:`faultlab.events.TrialEvent.to_dict`
and :meth:`faultlab.events.ProgressEvent.to_dict` encode them (the store contract test decodes
them with :func:`faultlab.events.decode_event`). Trial and result JSON are spliced in as text,
never decoded in Lua (cjson would round floats to 14 digits).

Every write script is run :func:`fenced`: its first key is the lease-token counter and its
first argument this coordinator's token (``0``: unfenced); the preamble removes both, so the
key and argument numbers below are those of the script's own body. Trial writes also do
nothing once the campaign is terminal (:data:`ACTIVE_ONLY`).
"""

FENCE = """
local fence_key = table.remove(KEYS, 1)
local fence = table.remove(ARGV, 1)
if fence ~= '0' and redis.call('GET', fence_key) ~= fence then
  return redis.error_reply('FENCED the lease token is now ' ..
    tostring(redis.call('GET', fence_key)))
end
"""

# KEYS[1] is the campaign hash in every script that uses it.
ACTIVE_ONLY = """
local campaign_state = redis.call('HGET', KEYS[1], 'state')
if campaign_state ~= 'QUEUED' and campaign_state ~= 'RUNNING' then return 0 end
"""


def fenced(body: str, *, active_only: bool = False) -> str:
    """``body`` behind the lease fence (and, for trial writes, the active-campaign check)."""
    return FENCE + (ACTIVE_ONLY if active_only else "") + body


# KEYS: campaign, campaigns, owner, active, requests, events
# ARGV: id, request_id, created_at, time, state event JSON, owner, max active ('' = none),
#       campaign key prefix (``P:campaign:``), field, value, ...
# Returns {1, id} when created, {0, existing id}, or {-1, active count} at the limit.
CREATE = """
if ARGV[2] ~= '' then
  local existing = redis.call('HGET', KEYS[5], ARGV[2])
  if existing then return {0, existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[1]} end
if ARGV[7] ~= '' then
  local count = 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    if redis.call('HGET', ARGV[8] .. id, 'owner') == ARGV[6] then count = count + 1 end
  end
  if count >= tonumber(ARGV[7]) then return {-1, tostring(count)} end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[5], ARGV[2], ARGV[1]) end
redis.call('XADD', KEYS[6], '*', 'time', ARGV[4], 'data', ARGV[5])
return {1, ARGV[1]}
"""

# KEYS: campaign, active, events
# ARGV: id, new state, error, time, state event JSON, '1' if new is terminal, expected...
TRANSITION = """
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

# KEYS: events; ARGV: time, event JSON
APPEND_EVENT = """
return redis.call('XADD', KEYS[1], '*', 'time', ARGV[1], 'data', ARGV[2])
"""

# KEYS: lease, lease token counter; ARGV: holder, ttl ms, '1' to steal
ACQUIRE_LEASE = """
local current = redis.call('GET', KEYS[1])
if current and ARGV[3] ~= '1' and string.match(current, '^%d+ (.*)$') ~= ARGV[1] then
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return token
"""

# KEYS: lease, lease token counter; ARGV: holder, token, ttl ms
RENEW_LEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2] .. ' ' .. ARGV[1], 'PX', ARGV[3])
return 1
"""

# KEYS: lease, lease token counter; ARGV: token
RELEASE_LEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: campaign; ARGV: meta JSON, time. A terminal campaign's updated_at stays its end.
SET_META = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
redis.call('HSET', KEYS[1], 'meta_json', ARGV[1])
if state == 'QUEUED' or state == 'RUNNING' then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
end
return 1
"""

# KEYS: campaign, trials, trial_data; ARGV: round, time, key, trial JSON, ...
ADD_TRIALS = """
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
MARK_RUNNING = """
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
MARK_FAILED = """
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
RESET_RUNNING = """
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

# KEYS: campaign, trials, trial_data, events, done, result key of item 1, of item 2, ...
# ARGV: time, then per item: key, result JSON, '1' if cached else '0'
RECORD_RESULTS = """
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
      redis.call('SET', KEYS[5 + i], ARGV[3 * i], 'NX')
      local result = redis.call('GET', KEYS[5 + i])
      local spec = redis.call('HGET', KEYS[3], key)
      if trial.state == 'FAILED' then retried = retried + 1 end
      trial.state = 'DONE'
      if trial.attempts < 1 then trial.attempts = 1 end
      redis.call('HSET', KEYS[2], key, cjson.encode(trial))
      redis.call('ZADD', KEYS[5], trial.index, key)
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

# KEYS: done, trials, trial_data; ARGV: start index, limit, result key prefix (``P:result:``).
# One page of results in one msgpack reply, four arrays: the keys interleaved with their plan
# indexes (ZRANGEBYSCORE's WITHSCORES reply itself), then the trial states, trial JSON and
# result JSON of those keys, in plan order (false where one went missing meanwhile). The reads
# are one HMGET per hash and one MGET (per 500 keys: ``unpack`` stays far below Lua's stack
# limit), packed by cmsgpack in C: no string is built per row, and joining the replies into
# texts in Lua cost about twice as much as packing them. (Result keys are built from the
# prefix: this store never runs on Redis Cluster, whose slots they would cross.)
RESULT_PAGE = """
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0,
  ARGV[2])
local keys, results = {}, {}
for i = 1, #found / 2 do
  keys[i] = found[2 * i - 1]
  results[i] = ARGV[3] .. keys[i]
end
local function read(command, key, names)
  if #names <= 500 then
    if #names == 0 then return {} end
    if key then return redis.call(command, key, unpack(names)) end
    return redis.call(command, unpack(names))
  end
  local out = {}
  for first = 1, #names, 500 do
    local last = math.min(first + 499, #names)
    local part = key and redis.call(command, key, unpack(names, first, last))
      or redis.call(command, unpack(names, first, last))
    for i = 1, #part do out[first + i - 1] = part[i] end
  end
  return out
end
return cmsgpack.pack({found, read('HMGET', KEYS[2], keys), read('HMGET', KEYS[3], keys),
  read('MGET', false, results)})
"""
