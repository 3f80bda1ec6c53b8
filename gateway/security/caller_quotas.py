"""What a caller may do and how much: its profiles and matters, its request rate, its open cases.

The rate is a token bucket per caller kept in Redis (one script, so every API process draws from the same bucket);
open cases are a sorted set per caller, joined just before a case is stored and left when the case finishes.
"""

from __future__ import annotations

import math
import time
from typing import Any

from gateway.api.errors import ApiError, ErrorItem
from gateway.security.callers import Caller
from gateway.store import keys
from gateway.store.connection import StrRedis

# KEYS: bucket hash. ARGV: tokens per second, burst. Returns {1, 0} taken, or {0, ms until a token is there}.
# Redis's clock, not each API process's, so every process refills the bucket alike.
TAKE_TOKEN = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_ms
tokens = math.min(burst, tokens + math.max(0, now_ms - at) * rate / 1000)
local taken, wait_ms = 0, 0
if tokens >= 1 then
  tokens, taken = tokens - 1, 1
else
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now_ms)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {taken, wait_ms}
"""

# KEYS: the caller's open-case set. ARGV: case id, now, limit (0: none). Returns 1 joined, 0 full.
JOIN_OPEN = """
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# A member this old without its case was left by a process that died between joining and storing.
_ORPHAN_AFTER_S = 60.0


def _forbidden(code: str, field: str, zh: str, en: str) -> ApiError:
    return ApiError(403, ErrorItem(code, field, zh, en))


def check_case_rights(caller: Caller, body: Any) -> None:
    """A case's channel, profile and matters against the caller's rights: 403 before anything is looked up."""
    if not isinstance(body, dict):
        return  # validation says what is wrong with it
    if body.get("channel") == "window" and caller.kind != "window":
        raise _forbidden("caller.channel.forbidden", "channel", "仅窗口调用方可提交窗口渠道申请",
                         "only a window caller may submit a window-channel case")
    profile = body.get("profile")
    if caller.profiles is not None and isinstance(profile, str) and profile not in caller.profiles:
        raise _forbidden("caller.profile.forbidden", "profile", "该调用方无权使用此地区配置",
                         "this caller may not use this profile")
    matters = body.get("matters")
    if caller.matters is not None and isinstance(matters, list):
        for i, code in enumerate(matters):
            if isinstance(code, str) and code not in caller.matters:
                raise _forbidden("caller.matter.forbidden", f"matters.{i}", "该调用方无权申请此事项",
                                 "this caller may not apply for this matter")


class CallerQuotas:
    def __init__(self, redis: StrRedis) -> None:
        self.redis = redis
        self._take_token = redis.register_script(TAKE_TOKEN)
        self._join_open = redis.register_script(JOIN_OPEN)

    async def admit(self, caller: Caller) -> None:
        """One request's token from the caller's bucket, or 429 with when to come back."""
        limit = caller.rate_limit
        if limit is None:
            return
        taken, wait_ms = await self._take_token(keys=[keys.rate_bucket(caller.app_id)],
                                                args=[limit.per_second, limit.burst])
        if not int(taken):
            retry_after = max(1, math.ceil(int(wait_ms) / 1000))
            raise ApiError(429, ErrorItem("caller.rate_limited", "", f"请求过于频繁，请 {retry_after} 秒后重试",
                                          f"too many requests; retry in {retry_after} s"),
                           headers={"Retry-After": str(retry_after)})

    async def open_case(self, caller: Caller, case_id: str) -> None:
        """Count a case about to be stored among the caller's open ones, or 429 when it has its maximum open."""
        key = keys.caller_open_cases(caller.app_id)
        if await self._join(key, caller, case_id):
            return
        if await self._forget_orphans(key) and await self._join(key, caller, case_id):
            return
        raise ApiError(429, ErrorItem("caller.quota.open_cases", "", "未办结的申请已达上限，请待办结后再提交",
                                      f"this caller has its maximum of {caller.max_open_cases} open cases"))

    async def not_stored(self, caller: Caller, case_id: str) -> None:
        """The case counted by open_case was not stored after all (a repeat or a conflict)."""
        await self.redis.zrem(keys.caller_open_cases(caller.app_id), case_id)

    async def _join(self, key: str, caller: Caller, case_id: str) -> bool:
        return bool(int(await self._join_open(keys=[key], args=[case_id, time.time(), caller.max_open_cases or 0])))

    async def _forget_orphans(self, key: str) -> bool:
        old = await self.redis.zrangebyscore(key, "-inf", time.time() - _ORPHAN_AFTER_S)
        if not old:
            return False
        async with self.redis.pipeline(transaction=False) as pipe:
            for case_id in old:
                pipe.exists(keys.case(case_id))
            present = await pipe.execute()
        orphans = [case_id for case_id, there in zip(old, present, strict=True) if not there]
        if orphans:
            await self.redis.zrem(key, *orphans)
        return bool(orphans)
