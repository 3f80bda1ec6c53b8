"""A circuit breaker per department, its state in Redis so every worker process sees the same department as down.

Closed: calls go through, consecutive technical failures are counted. Open (after `threshold` of them): no calls
until `open_s` has passed; tasks wait instead of burning retries. Half-open (the first call after that): one
failure opens it again at once, one success closes it.
"""

from __future__ import annotations

import time

from gateway.observability.metrics import BREAKER_OPEN
from gateway.store import keys
from gateway.store.connection import StrRedis

# KEYS: breaker hash. ARGV: now, threshold, open_s. Returns opened_until (0 when closed).
_RECORD_FAILURE = """
local now = tonumber(ARGV[1])
local opened_until = tonumber(redis.call('HGET', KEYS[1], 'opened_until') or '0')
if opened_until > now then return tostring(opened_until) end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if opened_until > 0 or failures >= tonumber(ARGV[2]) then
  local until_ts = now + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'opened_until', tostring(until_ts), 'failures', 0)
  return tostring(until_ts)
end
return '0'
"""


class CircuitBreakers:
    def __init__(self, redis: StrRedis, threshold: int, open_s: float) -> None:
        self.redis = redis
        self.threshold = threshold
        self.open_s = open_s
        self._record_failure = redis.register_script(_RECORD_FAILURE)

    async def open_for(self, adapter: str) -> float:
        """Seconds until the breaker lets a call through again; 0 when it is closed or half-open."""
        raw = await self.redis.hget(keys.breaker(adapter), "opened_until")
        remaining = float(raw or 0) - time.time()
        BREAKER_OPEN.labels(adapter).set(1 if remaining > 0 else 0)
        return max(0.0, remaining)

    async def record_failure(self, adapter: str) -> bool:
        """Count a technical failure; True when the breaker is (now) open."""
        opened_until = float(await self._record_failure(keys=[keys.breaker(adapter)],
                                                        args=[time.time(), self.threshold, self.open_s]))
        is_open = opened_until > time.time()
        BREAKER_OPEN.labels(adapter).set(1 if is_open else 0)
        return is_open

    async def record_success(self, adapter: str) -> None:
        await self.redis.hset(keys.breaker(adapter), mapping={"failures": 0, "opened_until": 0})
        BREAKER_OPEN.labels(adapter).set(0)
