"""What a caller may do and how much: its profiles and matters, its request rate, its open cases.

The rate is a token bucket per caller kept in Redis (one script, so every API process draws from the same bucket),
drawn in the round trip that spends the request's nonce; open cases are a sorted set per caller, joined in the step
that stores a case (CREATE_CASE) and left when the case finishes.
"""

from __future__ import annotations

import math
import time
from typing import Any

from gateway.api.errors import ApiError, ErrorItem
from gateway.security.callers import Caller, nonce_reused
from gateway.store import keys, pipelined
from gateway.store.connection import StrRedis
from gateway.store.pipelined import Script

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


# KEYS: the caller's open-case set. ARGV: case id, now, limit. Returns 1 joined, 0 full.
JOIN_OPEN = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# A member this old without its case was left by a process that stopped between joining and storing.
_ORPHAN_AFTER_S = 60.0


class CallerQuotas:
    def __init__(self, redis: StrRedis) -> None:
        self.redis = redis
        self._take_token = Script(TAKE_TOKEN)
        self.join_script = Script(JOIN_OPEN)

    async def admit(self, caller: Caller, spend_nonce: tuple[Any, ...]) -> None:
        """The request's nonce spent and one token taken from the caller's bucket, in one round trip: 401 for a
        nonce used before, else 429 with when to come back when the bucket is empty."""
        commands = [spend_nonce]
        if caller.rate_limit is not None:
            commands.append(self._take_token.call([keys.rate_bucket(caller.app_id)],
                                                  [caller.rate_limit.per_second, caller.rate_limit.burst]))
        fresh, *token = await pipelined.execute(self.redis, commands, [self._take_token])
        if not fresh:
            raise nonce_reused()
        if token and not int(token[0][0]):
            retry_after = max(1, math.ceil(int(token[0][1]) / 1000))
            raise ApiError(429, ErrorItem("caller.rate_limited", "", f"请求过于频繁，请 {retry_after} 秒后重试",
                                          f"too many requests; retry in {retry_after} s"),
                           headers={"Retry-After": str(retry_after)})


    def join_open(self, caller: Caller, case_id: str) -> tuple[Any, ...] | None:
        """The command that counts a case about to be stored among the caller's open ones (None: the caller has no
        maximum, so nothing to count). Its own slot, not the case's shard: sent with the assertion's claim before
        the case is stored (gateway/orchestration/intake.py), and undone by not_stored when the case was not."""
        if caller.max_open_cases is None:
            return None
        return self.join_script.call([keys.caller_open_cases(caller.app_id)],
                                    [case_id, time.time(), caller.max_open_cases])

    async def join_after_orphans(self, caller: Caller, case_id: str) -> bool:
        """The caller looked full: forget members a stopped process left behind, then try once more."""
        key = keys.caller_open_cases(caller.app_id)
        if not await self._forget_orphans(key):
            return False
        command = self.join_open(caller, case_id)
        assert command is not None
        [joined] = await pipelined.execute(self.redis, [command], [self.join_script])
        return bool(int(joined))

    async def not_stored(self, caller: Caller, case_id: str) -> None:
        """The case counted by join_open was not stored after all (a repeat, a conflict or a spent assertion)."""
        if caller.max_open_cases is not None:
            await self.redis.zrem(keys.caller_open_cases(caller.app_id), case_id)

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


def open_cases_full(caller: Caller) -> ApiError:
    return ApiError(429, ErrorItem("caller.quota.open_cases", "", "未办结的申请已达上限，请待办结后再提交",
                                   f"this caller has its maximum of {caller.max_open_cases} open cases"))
