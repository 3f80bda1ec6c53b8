"""Registered callers and their HMAC-signed requests (a contract with the platform).

X-Signature = hex HMAC-SHA256 over the caller string to sign of gateway.security.signing.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from gateway.api.errors import unauthorized
from gateway.security.signing import caller_request, verify_hmac_hex
from gateway.store import keys
from gateway.store.connection import StrRedis


@dataclass(frozen=True)
class Caller:
    app_id: str
    secret: str
    name: str = ""
    # A service-centre window's clerk checked the ID card in person: no applicant assertion needed.
    kind: Literal["platform", "window"] = "platform"


class CallersFileError(ValueError):
    pass


def load_callers(path: Path) -> dict[str, Caller]:
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(raw, dict) and "callers" in raw:
        raw = raw["callers"]
    if not isinstance(raw, list):
        raise CallersFileError(f"{path}: expected a list of {{app_id, secret, ...}}")
    callers: dict[str, Caller] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not item.get("app_id") or not item.get("secret"):
            raise CallersFileError(f"{path}: entry {i} needs app_id and secret")
        kind = _kind(item)
        if kind not in ("platform", "window"):
            raise CallersFileError(f"{path}: entry {i} kind must be platform or window, not {kind!r}")
        callers[str(item["app_id"])] = Caller(str(item["app_id"]), str(item["secret"]), str(item.get("name", "")),
                                              kind)
    return callers


def _kind(item: dict[str, object]) -> object:
    """`kind` is ours; a platform team's file may say `type`, `role` or `channel`, or `window: true`."""
    if item.get("window") is True:
        return "window"
    for key in ("kind", "type", "role", "channel"):
        if key in item:
            return item[key]
    return "platform"


def write_demo_callers(path: Path) -> Caller:
    caller = Caller("demo-platform", secrets.token_hex(16), "demo platform (created by gateway up)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([caller.__dict__], indent=2), encoding="utf-8")
    return caller


class CallerAuthenticator:
    def __init__(self, callers: dict[str, Caller], redis: StrRedis, window_s: int = 300) -> None:
        self.callers = callers
        self.redis = redis
        self.window_s = window_s

    async def authenticate(self, method: str, path_with_query: str, headers: dict[str, str], body: bytes) -> Caller:
        app_id, timestamp = headers.get("x-app-id", ""), headers.get("x-timestamp", "")
        nonce, given = headers.get("x-nonce", ""), headers.get("x-signature", "")
        missing = [h for h, v in (("X-App-Id", app_id), ("X-Timestamp", timestamp), ("X-Nonce", nonce),
                                  ("X-Signature", given)) if not v]
        if missing:
            raise unauthorized("auth.header_missing", f"缺少签名请求头：{', '.join(missing)}",
                               f"missing signature headers: {', '.join(missing)}", missing[0])
        caller = self.callers.get(app_id)
        if caller is None:
            raise unauthorized("auth.unknown_caller", "调用方未注册", "unknown caller", "X-App-Id")
        try:
            skew = abs(time.time() - int(timestamp))
        except ValueError:
            skew = float("inf")
        if skew > self.window_s:
            raise unauthorized("auth.timestamp_out_of_window", f"时间戳超出允许范围（±{self.window_s}秒）",
                               f"timestamp is more than {self.window_s} s off", "X-Timestamp")
        if not verify_hmac_hex(caller.secret, caller_request(method, path_with_query, timestamp, nonce, body), given):
            raise unauthorized("auth.signature_invalid", "签名校验失败", "signature does not verify", "X-Signature")
        # Checked after the signature, so nobody can burn another caller's nonces.
        if not await self.redis.set(keys.nonce(app_id, nonce), "1", nx=True, ex=self.window_s * 2):
            raise unauthorized("auth.nonce_reused", "请求随机数已使用（疑似重放）", "nonce already used (replay?)",
                               "X-Nonce")
        return caller
