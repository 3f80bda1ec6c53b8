"""What a caller may do and how much: its profiles and matters, its request rate, its open cases.

The rate is a token bucket per caller kept in Redis (one script, so every API process draws from the same bucket),
drawn in the round trip that spends the request's nonce; open cases are a sorted set per caller, joined in the step
that stores a case (CREATE_CASE) and left when the case finishes.
"""

from __future__ import annotations

import math
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


class CallerQuotas:
    def __init__(self, redis: StrRedis) -> None:
        self.redis = redis
        self._take_token = Script(TAKE_TOKEN)

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


def open_cases_full(caller: Caller) -> ApiError:
    return ApiError(429, ErrorItem("caller.quota.open_cases", "", "未办结的申请已达上限，请待办结后再提交",
                                   f"this caller has its maximum of {caller.max_open_cases} open cases"))
