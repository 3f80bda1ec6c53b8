"""Registered callers and their HMAC-signed requests (a contract with the platform).

X-Signature = hex HMAC-SHA256 over the caller string to sign of gateway.security.signing: METHOD \n
PATH_WITH_QUERY \n X-Timestamp \n X-Nonce \n hex SHA256(body), and for a `window` caller one more line:
\n X-Operator-Id (the clerk at the counter).

Headers are checked before the body is read (presence, ASCII, lengths, known caller, timestamp window, signature
format); only then is the body read (bounded by the API) and the HMAC verified, and then the nonce spent.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from gateway.api.errors import ApiError, unauthorized
from gateway.security.signing import caller_request, verify_hmac_hex
from gateway.store import keys

# Printable ASCII, bounded: anything else in a signature header is refused with a 401, never reaches a parser.
_TOKEN = re.compile(r"[\x21-\x7e]{1,128}")
_APP_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_OPERATOR = re.compile(r"[\x21-\x7e]{1,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: int


@dataclass(frozen=True)
class Caller:
    app_id: str
    secret: str
    name: str = ""
    # A service-centre window's clerk checked the ID card in person: no applicant assertion needed.
    kind: Literal["platform", "window"] = "platform"
    profiles: frozenset[str] | None = None  # None: every profile
    matters: frozenset[str] | None = None  # None: every matter
    rate_limit: RateLimit | None = None
    max_open_cases: int | None = None
    webhook_url: str | None = None  # None: the gateway's GATEWAY_WEBHOOK_URL / GATEWAY_WEBHOOK_SECRET
    webhook_secret: str | None = None


class CallersFileError(ValueError):
    pass


_KEYS = {"app_id", "secret", "name", "kind", "profiles", "matters", "rate_limit", "max_open_cases", "webhook_url",
         "webhook_secret"}
_ALIASES = ("type", "role", "channel", "window")  # accepted once; each could grant the window role by accident


def listed_entries(path: Path, key: str, error: type[ValueError], shape: str) -> list[Any]:
    """The entries of a JSON or YAML file that is a list, or a mapping holding the list under `key` (the callers and
    the operators files); `error` with `shape` when it is neither."""
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(raw, dict) and key in raw:
        raw = raw[key]
    if not isinstance(raw, list):
        raise error(f"{path}: expected a list of {shape}")
    return raw


def load_callers(path: Path, known_profiles: Collection[str] | None = None,
                 known_matters: Collection[str] | None = None) -> dict[str, Caller]:
    raw = listed_entries(path, "callers", CallersFileError, "{app_id, secret, ...}")
    callers: dict[str, Caller] = {}
    for i, item in enumerate(raw):
        caller = _caller(item, f"{path}: entry {i}", known_profiles, known_matters)
        if caller.app_id in callers:
            raise CallersFileError(f"{path}: entry {i}: app_id {caller.app_id!r} is listed twice")
        callers[caller.app_id] = caller
    return callers


def _caller(item: Any, where: str, known_profiles: Collection[str] | None,
            known_matters: Collection[str] | None) -> Caller:
    if not isinstance(item, dict) or not item.get("app_id") or not item.get("secret"):
        raise CallersFileError(f"{where} needs app_id and secret")
    app_id = str(item["app_id"])
    where = f"{where} ({app_id})"
    if not _APP_ID.fullmatch(app_id):
        raise CallersFileError(f"{where}: app_id must be 1-64 of A-Z a-z 0-9 . _ -")
    aliases = [k for k in _ALIASES if k in item]
    if aliases:
        raise CallersFileError(f"{where}: {', '.join(aliases)} is not a callers-file key; "
                               "say kind: platform or kind: window")
    unknown = sorted(str(k) for k in item if k not in _KEYS)
    if unknown:
        raise CallersFileError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    kind = item.get("kind", "platform")
    if kind not in ("platform", "window"):
        raise CallersFileError(f"{where}: kind must be platform or window, not {kind!r}")
    profiles = _codes(item, "profiles", where, known_profiles)
    matters = _codes(item, "matters", where, known_matters)
    max_open = item.get("max_open_cases")
    if max_open is not None and (not _is_int(max_open) or max_open < 1):
        raise CallersFileError(f"{where}: max_open_cases must be a whole number of at least 1")
    webhook_url, webhook_secret = item.get("webhook_url"), item.get("webhook_secret")
    if webhook_url is not None and (not isinstance(webhook_url, str)
                                    or not webhook_url.startswith(("http://", "https://"))):
        raise CallersFileError(f"{where}: webhook_url must be an http(s) URL")
    if webhook_secret is not None and (not isinstance(webhook_secret, str) or not webhook_secret):
        raise CallersFileError(f"{where}: webhook_secret must be a non-empty string")
    if (webhook_url is None) != (webhook_secret is None):
        raise CallersFileError(f"{where}: webhook_url and webhook_secret go together (a caller's own webhook is "
                               "never signed with the shared secret)")
    return Caller(app_id, str(item["secret"]), str(item.get("name", "")), kind, profiles, matters,
                  _rate_limit(item.get("rate_limit"), where), max_open, webhook_url, webhook_secret)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _codes(item: dict[str, Any], name: str, where: str, known: Collection[str] | None) -> frozenset[str] | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise CallersFileError(f"{where}: {name} must be a non-empty list of codes (leave it out to allow all)")
    strangers = sorted(set(value) - set(known)) if known is not None else []
    if strangers:
        raise CallersFileError(f"{where}: unknown {name}: {', '.join(strangers)}")
    return frozenset(value)


def _rate_limit(value: Any, where: str) -> RateLimit | None:
    if value is None:
        return None
    if (not isinstance(value, dict) or set(value) != {"per_second", "burst"}
            or not isinstance(value["per_second"], int | float) or isinstance(value["per_second"], bool)
            or value["per_second"] <= 0 or not _is_int(value["burst"]) or value["burst"] < 1):
        raise CallersFileError(f"{where}: rate_limit must be {{per_second: number > 0, burst: whole number >= 1}}")
    return RateLimit(float(value["per_second"]), int(value["burst"]))


def write_demo_callers(path: Path) -> Caller:
    caller = Caller("demo-platform", secrets.token_hex(16), "demo platform (created by gateway up)")
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"app_id": caller.app_id, "secret": caller.secret, "name": caller.name, "kind": caller.kind}
    path.write_text(json.dumps([entry], indent=2), encoding="utf-8")
    path.chmod(0o600)  # it holds the caller's secret
    return caller


@dataclass(frozen=True)
class SignedHeaders:
    """A request's signature headers that passed the cheap checks; the HMAC is not verified yet."""

    caller: Caller
    timestamp: str
    nonce: str
    signature: str
    operator: str | None  # the window clerk; None for a platform caller


def _invalid(header: str) -> ApiError:
    return unauthorized("auth.header_invalid", f"请求头 {header} 格式错误", f"the {header} header is malformed", header)


class CallerAuthenticator:
    def __init__(self, callers: dict[str, Caller], window_s: int = 300) -> None:
        self.callers = callers
        self.window_s = window_s

    def check_headers(self, headers: dict[str, str]) -> SignedHeaders:
        """Everything that needs no body: cheap, so a refused request costs nothing more."""
        app_id, timestamp = headers.get("x-app-id", ""), headers.get("x-timestamp", "")
        nonce, given = headers.get("x-nonce", ""), headers.get("x-signature", "").strip()
        missing = [h for h, v in (("X-App-Id", app_id), ("X-Timestamp", timestamp), ("X-Nonce", nonce),
                                  ("X-Signature", given)) if not v]
        if missing:
            raise unauthorized("auth.header_missing", f"缺少签名请求头：{', '.join(missing)}",
                               f"missing signature headers: {', '.join(missing)}", missing[0])
        for header, value, pattern in (("X-App-Id", app_id, _APP_ID), ("X-Timestamp", timestamp, _TIMESTAMP),
                                       ("X-Nonce", nonce, _TOKEN), ("X-Signature", given, _SIGNATURE)):
            if not pattern.fullmatch(value):
                raise _invalid(header)
        caller = self.callers.get(app_id)
        if caller is None:
            raise unauthorized("auth.unknown_caller", "调用方未注册", "unknown caller", "X-App-Id")
        if abs(time.time() - int(timestamp)) > self.window_s:
            raise unauthorized("auth.timestamp_out_of_window", f"时间戳超出允许范围（±{self.window_s}秒）",
                               f"timestamp is more than {self.window_s} s off", "X-Timestamp")
        operator = None
        if caller.kind == "window":
            operator = headers.get("x-operator-id", "").strip()
            if not operator:
                raise unauthorized("auth.operator_missing", "窗口调用须提供经办人（X-Operator-Id）",
                                   "a window caller must name its clerk in X-Operator-Id", "X-Operator-Id")
            if not _OPERATOR.fullmatch(operator):
                raise _invalid("X-Operator-Id")
        return SignedHeaders(caller, timestamp, nonce, given.lower(), operator)

    def verify(self, signed: SignedHeaders, method: str, path_with_query: str, body: bytes) -> None:
        """The HMAC; the nonce is spent next, with the caller's rate token (CallerQuotas.admit)."""
        caller = signed.caller
        message = caller_request(method, path_with_query, signed.timestamp, signed.nonce, body, signed.operator)
        if not verify_hmac_hex(caller.secret, message, signed.signature):
            raise unauthorized("auth.signature_invalid", "签名校验失败", "signature does not verify", "X-Signature")

    def spend_nonce(self, signed: SignedHeaders) -> tuple[Any, ...]:
        """The command that spends the request's nonce: it answers None when the nonce was used before. Kept for
        twice the timestamp window, beyond which the timestamp alone refuses a replay."""
        return ("SET", keys.nonce(signed.caller.app_id, signed.nonce), "1", "NX", "EX", self.window_s * 2)


def nonce_reused() -> ApiError:
    return unauthorized("auth.nonce_reused", "请求随机数已使用（疑似重放）", "nonce already used (replay?)", "X-Nonce")
