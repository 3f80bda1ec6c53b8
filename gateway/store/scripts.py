"""Lua scripts: each is one atomic step, so no crash between two writes can leave a case half-done."""

# KEYS: idempotency, case, outbox stream, task stream, open-cases zset, [assertion jti when ARGV[9] > 0], then per
#       task: task key, request-id index key.
# ARGV: request hash, case id, idempotency ttl, case fields JSON, deadline score, tasks JSON [{fields}],
#       created event JSON, first messages JSON [{matter, kind}], assertion jti ttl (0: no assertion).
# Returns {"created", case_id}, {"exists", stored value} or {"replayed", ""} (the assertion was used before).
# The idempotency key is looked at first, so a retry of the same request answers its case even though its
# assertion is spent; the jti is consumed in the same step that creates the case, so it is used exactly once.
CREATE_CASE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {'exists', existing} end
local jti_ttl = tonumber(ARGV[9])
local first_task_key = 6
if jti_ttl > 0 then
  if redis.call('SET', KEYS[6], ARGV[2], 'NX', 'EX', jti_ttl) == false then return {'replayed', ''} end
  first_task_key = 7
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', tonumber(ARGV[3]))
local case_fields = cjson.decode(ARGV[4])
for k, v in pairs(case_fields) do redis.call('HSET', KEYS[2], k, v) end
local tasks = cjson.decode(ARGV[6])
for i, t in ipairs(tasks) do
  local task_key = KEYS[first_task_key + 2 * (i - 1)]
  local index_key = KEYS[first_task_key + 2 * (i - 1) + 1]
  for k, v in pairs(t.fields) do redis.call('HSET', task_key, k, v) end
  redis.call('SET', index_key, ARGV[2] .. '|' .. t.fields.matter)
end
for _, m in ipairs(cjson.decode(ARGV[8])) do
  redis.call('XADD', KEYS[4], '*', 'case_id', ARGV[2], 'matter', m.matter, 'kind', m.kind)
end
redis.call('ZADD', KEYS[5], tonumber(ARGV[5]), ARGV[2])
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('XADD', KEYS[3], '*', 'case_id', ARGV[2], 'seq', seq, 'event', ARGV[7])
return {'created', ARGV[2]}
"""

# KEYS: task, case, outbox stream, task stream, delayed zset
# ARGV: target status, allowed source statuses (comma-separated), fields JSON, event JSON (without seq),
#       the task's next message as the delayed set's member JSON ('' for none), when it is due (0: now)
# Returns {code, previous status}: 1 moved, 0 refused (illegal transition), 2 already there (harmless repeat),
# -1 no such task. The next message is written only with a move: a crash cannot leave a moved task without it.
TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {-1, ''} end
if current == ARGV[1] then return {2, current} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == current then allowed = true break end
end
if not allowed then return {0, current} end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('XADD', KEYS[3], '*', 'case_id', redis.call('HGET', KEYS[2], 'id'), 'seq', seq, 'event', ARGV[4])
if ARGV[5] ~= '' then
  if tonumber(ARGV[6]) > 0 then
    redis.call('ZADD', KEYS[5], 'NX', ARGV[6], ARGV[5])
  else
    local m = cjson.decode(ARGV[5])
    redis.call('XADD', KEYS[4], '*', 'case_id', m.case_id, 'matter', m.matter, 'kind', m.kind)
  end
end
return {1, current}
"""

# Move due messages from the delayed set into the task stream; ZREM first so only one worker moves each.
# KEYS: delayed zset, task stream. ARGV: now, limit. Returns how many moved.
PROMOTE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, raw in ipairs(due) do
  if redis.call('ZREM', KEYS[1], raw) == 1 then
    local m = cjson.decode(raw)
    redis.call('XADD', KEYS[2], '*', 'case_id', m.case_id, 'matter', m.matter, 'kind', m.kind)
    moved = moved + 1
  end
end
return moved
"""

# An event that is not a task transition: numbered and queued in one step, so a case's seq never has a gap.
# KEYS: case, outbox stream. ARGV: case id, event JSON. Returns the seq.
APPEND_EVENT = """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], '*', 'case_id', ARGV[1], 'seq', seq, 'event', ARGV[2])
return seq
"""

# Append to a case's audit chain only on top of the entry the caller hashed against (compare-and-append).
# KEYS: audit list. ARGV: seq, previous hash, entry JSON.
# Returns 1 appended, 2 already there (a redelivered event), 0 predecessor missing or moved (try again later).
APPEND_AUDIT = """
local last = redis.call('LINDEX', KEYS[1], -1)
local last_seq, last_hash = 0, ''
if last then
  local entry = cjson.decode(last)
  last_seq, last_hash = tonumber(entry.seq), entry.hash
end
local seq = tonumber(ARGV[1])
if last_seq >= seq then return 2 end
if last_seq ~= seq - 1 or last_hash ~= ARGV[2] then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[3])
return 1
"""
