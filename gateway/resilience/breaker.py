"""A circuit breaker per department, its state in Redis so every worker process sees the same department as down.

Closed: calls go through, consecutive technical failures are counted. Open (after `threshold` of them): no calls
until `open_s` has passed; tasks wait instead of burning retries. Half-open (once `open_s` has passed): exactly one
caller, in any process, holds the probe lock and makes the call; every other caller keeps waiting. The probe's
failure opens the breaker again at once, its success closes it; a probe that never reports (its worker died) frees
the lock when it expires, and the next caller probes.
"""

from __future__ import annotations

import time

from gateway.observability.metrics import BREAKER_OPEN
from gateway.store import keys
from gateway.store.connection import StrRedis

# KEYS: breaker hash, probe lock. ARGV: now, probe lock ms, consumer.
# Returns seconds to wait as a string: "0" when the call may go (closed, or this caller holds the probe).
_ADMIT = """
local now = tonumber(ARGV[1])
local opened_until = tonumber(redis.call('HGET', KEYS[1], 'opened_until') or '0')
if opened_until == 0 then return '0' end
if opened_until > now then return tostring(opened_until - now) end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', tonumber(ARGV[2])) then return '0' end
return tostring(math.max(0.05, redis.call('PTTL', KEYS[2]) / 1000))
"""

# KEYS: breaker hash, probe lock. ARGV: now, threshold, open_s. Returns opened_until (0 when closed).
_RECORD_FAILURE = """
local now = tonumber(ARGV[1])
local opened_until = tonumber(redis.call('HGET', KEYS[1], 'opened_until') or '0')
if opened_until > now then return tostring(opened_until) end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if opened_until > 0 or failures >= tonumber(ARGV[2]) then
  local until_ts = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'opened_until', tostring(until_ts), 'failures', 0)
  redis.call('DEL', KEYS[2])
  return tostring(until_ts)
end
return '0'
"""


class CircuitBreakers:
    def __init__(self, redis: StrRedis, threshold: int, open_s: float) -> None:
        self.redis = redis
        self.threshold = threshold
        self.open_s = open_s
        self._admit = redis.register_script(_ADMIT)
        self._record_failure = redis.register_script(_RECORD_FAILURE)

    async def admit(self, adapter: str, probe_s: float, consumer: str = "") -> float:
        """Seconds to wait before calling; 0 when the breaker is closed or this caller is the half-open probe.

        `probe_s` bounds how long a probe may hold the lock: the longest one call can take.
        """
        wait = float(await self._admit(keys=[keys.breaker(adapter), keys.breaker_probe(adapter)],
                                       args=[time.time(), max(1, int(probe_s * 1000)), consumer]))
        BREAKER_OPEN.labels(adapter).set(1 if wait > 0 else 0)
        return wait

    async def record_failure(self, adapter: str) -> bool:
        """Count a technical failure; True when the breaker is (now) open."""
        opened_until = float(await self._record_failure(
            keys=[keys.breaker(adapter), keys.breaker_probe(adapter)], args=[time.time(), self.threshold, self.open_s]))
        is_open = opened_until > time.time()
        BREAKER_OPEN.labels(adapter).set(1 if is_open else 0)
        return is_open

    async def record_success(self, adapter: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.breaker(adapter), mapping={"failures": 0, "opened_until": 0})
            pipe.delete(keys.breaker_probe(adapter))
            await pipe.execute()
        BREAKER_OPEN.labels(adapter).set(0)

    async def state(self, adapter: str) -> tuple[str, int]:
        """("closed" | "open" | "half-open", consecutive failures counted), as every process sees it."""
        raw = await self.redis.hgetall(keys.breaker(adapter))
        opened_until, failures = float(raw.get("opened_until") or 0), int(raw.get("failures") or 0)
        if opened_until == 0:
            return "closed", failures
        return ("open" if opened_until > time.time() else "half-open"), failures
