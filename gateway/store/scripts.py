"""Lua scripts: each is one atomic step, so no crash between two writes can leave a case half-done."""

# Every event is numbered, chained onto the case's audit chain and queued on the outbox in the step that makes the
# change. Lua cannot compute the chain's HMAC, so Python computes it over (seq, chain head, event) and the script
# appends only while the case's chain head (`seq`, `audit_head` in the case hash) is still the one Python read;
# otherwise it changes nothing and answers "retry". _CHAIN_STALE tests that, _CHAIN_APPEND appends, with the case
# key, audit list and outbox stream at KEYS[case_k], KEYS[audit_k], KEYS[outbox_k] and ARGV seq, head, sealed event,
# entry JSON, mac at ARGV[chain_a .. chain_a + 4].
_CHAIN_STALE = """
local chain_seq = tonumber(ARGV[chain_a])
if tonumber(redis.call('HGET', KEYS[case_k], 'seq') or '0') ~= chain_seq - 1
   or (redis.call('HGET', KEYS[case_k], 'audit_head') or '') ~= ARGV[chain_a + 1] then
"""
_CHAIN_APPEND = """
redis.call('HSET', KEYS[case_k], 'seq', chain_seq, 'audit_head', ARGV[chain_a + 4])
redis.call('RPUSH', KEYS[audit_k], ARGV[chain_a + 3])
redis.call('XADD', KEYS[outbox_k], '*', 'case_id', redis.call('HGET', KEYS[case_k], 'id'), 'seq', chain_seq,
           'event', ARGV[chain_a + 2])
"""


def _chained(script: str, case_k: int, audit_k: int, outbox_k: int, chain_a: int) -> str:
    return (f"local case_k, audit_k, outbox_k, chain_a = {case_k}, {audit_k}, {outbox_k}, {chain_a}\n"
            + script.replace("--CHAIN_STALE--", _CHAIN_STALE).replace("--CHAIN_APPEND--", _CHAIN_APPEND))


# Every key a script touches is in one shard (gateway/store/keys.py), so each script runs on one Cluster slot.

# KEYS: idempotency, case, outbox stream, task stream, open-cases zset, audit list, then per task: task key,
#       request-id index key, and last the applicant index (the console's look-up by ID number) when ARGV[14] is '1'
#       (all in the case's shard).
# ARGV: request hash, case id, idempotency ttl, case fields JSON, deadline score, tasks JSON [{fields}],
#       first messages JSON [{matter, kind, traceparent?}], then the chain arguments of the created event (seq 1 on an
#       empty head: a new case id has no chain to race with), now (the case's score in the applicant index) and '1'
#       when the applicant index is given.
# Returns {"created", case_id} or {"exists", stored value}; nothing is written unless created. The applicant
# assertion is spent before this step, in its own slot, and the caller's open case counted in its own
# (CaseStore.create, CallerQuotas.open_case).
CREATE_CASE = _chained("""
local existing = redis.call('GET', KEYS[1])
if existing then return {'exists', existing} end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'EX', tonumber(ARGV[3]))
local case_fields = cjson.decode(ARGV[4])
for k, v in pairs(case_fields) do redis.call('HSET', KEYS[2], k, v) end
local tasks = cjson.decode(ARGV[6])
for i, t in ipairs(tasks) do
  local task_key = KEYS[7 + 2 * (i - 1)]
  local index_key = KEYS[7 + 2 * (i - 1) + 1]
  for k, v in pairs(t.fields) do redis.call('HSET', task_key, k, v) end
  redis.call('SET', index_key, ARGV[2] .. '|' .. t.fields.matter)
end
for _, m in ipairs(cjson.decode(ARGV[7])) do
  if m.traceparent then
    redis.call('XADD', KEYS[4], '*', 'case_id', ARGV[2], 'matter', m.matter, 'kind', m.kind,
               'traceparent', m.traceparent)
  else
    redis.call('XADD', KEYS[4], '*', 'case_id', ARGV[2], 'matter', m.matter, 'kind', m.kind)
  end
end
redis.call('ZADD', KEYS[5], tonumber(ARGV[5]), ARGV[2])
if ARGV[14] == '1' then  -- named on the case too, so retention can take the case out of it
  redis.call('ZADD', KEYS[#KEYS], tonumber(ARGV[13]), ARGV[2])
  redis.call('HSET', KEYS[2], 'applicant_index', KEYS[#KEYS])
end
local chain_seq = tonumber(ARGV[chain_a])
--CHAIN_APPEND--
return {'created', ARGV[2]}
""", case_k=2, audit_k=6, outbox_k=3, chain_a=8)

# Spend an applicant assertion for one request (its own slot: the jti is global, the case is in its shard).
# KEYS: assertion key. ARGV: the claim (caller, idempotency key, request hash), ttl.
# Returns 1 when this request holds the assertion (newly, or again: a retry of the same request), 0 when another
# request spent it.
CLAIM_ASSERTION = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""

# KEYS: task, case, outbox stream, audit list, task stream, delayed zset
# ARGV: target status, allowed source statuses (comma-separated), fields JSON, the chain arguments (4-8), then the
#       task's next message as the delayed set's member JSON ('' for none) and when it is due (0: now).
# Returns {code, previous status}: 1 moved, 0 refused (illegal transition), 2 already there (harmless repeat),
# -1 no such task, 3 the chain head moved (nothing changed: read it again and retry).
# The next message is written only with a move: a crash cannot leave a moved task without it.
TRANSITION = _chained("""
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {-1, ''} end
if current == ARGV[1] then return {2, current} end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == current then allowed = true break end
end
if not allowed then return {0, current} end
--CHAIN_STALE-- return {3, current} end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do redis.call('HSET', KEYS[1], k, v) end
--CHAIN_APPEND--
if ARGV[9] ~= '' then
  if tonumber(ARGV[10]) > 0 then
    redis.call('ZADD', KEYS[6], 'NX', ARGV[10], ARGV[9])
  else
    local m = cjson.decode(ARGV[9])
    redis.call('XADD', KEYS[5], '*', 'case_id', m.case_id, 'matter', m.matter, 'kind', m.kind)
  end
end
return {1, current}
""", case_k=2, audit_k=4, outbox_k=3, chain_a=4)

# Move due messages from a shard's delayed set into its task stream; ZREM first so only one worker moves each.
# KEYS: delayed zset, task stream (of one shard). ARGV: now, limit. Returns how many moved.
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

# An event that is not a task transition: numbered, chained and queued in one step, so a case's seq never has a gap.
# KEYS: case, outbox stream, audit list. ARGV: the chain arguments. Returns the seq, or 0: the chain head moved.
APPEND_EVENT = _chained("""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
--CHAIN_STALE-- return 0 end
--CHAIN_APPEND--
return chain_seq
""", case_k=1, audit_k=3, outbox_k=2, chain_a=1)

# Key rotation: replace a sealed value only if it is still the one that was re-sealed (a worker may have written the
# field meanwhile, under the current key). KEYS: hash. ARGV: field, old value, new value. Returns 1 replaced, 0 not.
RESEAL_FIELD = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# The same for one item of a list (audit entries, parked outbox events). KEYS: list. ARGV: index, old, new.
RESEAL_ITEM = """
if redis.call('LINDEX', KEYS[1], tonumber(ARGV[1])) ~= ARGV[2] then return 0 end
redis.call('LSET', KEYS[1], tonumber(ARGV[1]), ARGV[3])
return 1
"""

# A reminder of the applicant's H5 step: sent once per reminder number, only while the task still waits on the same
# step (its plan unchanged), with the fresh links stored on the task and the event numbered and chained in the same
# step. KEYS: task, case, outbox stream, audit list. ARGV: waiting status, plan JSON as read, reminders counted as
# read, reminders counted after this one, links JSON, updated_at, then the chain arguments. Returns 1 sent, 0 the task
# moved on or another worker sent this reminder, 3 the chain head moved (nothing changed: read it again and retry).
STEP_REMINDER = _chained("""
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'applicant_step') ~= ARGV[2] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'step_reminded') or '0') ~= tonumber(ARGV[3]) then return 0 end
--CHAIN_STALE-- return 3 end
redis.call('HSET', KEYS[1], 'step_reminded', ARGV[4], 'links', ARGV[5], 'updated_at', ARGV[6])
--CHAIN_APPEND--
return 1
""", case_k=2, audit_k=4, outbox_k=3, chain_a=7)

# Retention: remove a finished case with every key it left, but only if its audit chain is still the one exported
# (its head unchanged): a change after the export keeps the case for the next sweep. Every key is in the case's
# shard; the caller's open-case set (its own slot) was left when the case finished.
# KEYS: case, audit list, open-cases zset, delayed zset, [the applicant index when ARGV[3] is '1'], then the case's
# other keys (tasks, their links and request-id indexes, the certificate lock).
# ARGV: exported chain head, case id, '1' when the applicant index is given, then its timers' members of the delayed
# set (a reminder timer outlives a step the applicant finished early).
# Returns 1 removed, 0 the chain moved on, -1 no such case (removed already).
REMOVE_CASE = """
local head = redis.call('HGET', KEYS[1], 'audit_head')
if not head then return -1 end
if head ~= ARGV[1] then return 0 end
redis.call('ZREM', KEYS[3], ARGV[2])
local first_key, first_timer = 5, 4
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[5], ARGV[2])
  first_key = 6
end
for i = first_timer, #ARGV do redis.call('ZREM', KEYS[4], ARGV[i]) end
for i = first_key, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# Acknowledge a stream entry and delete it, together. KEYS: stream. ARGV: group, entry id.
ACK_DELETE = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
