"""Console sessions: a signed cookie (HMAC-SHA256 under a key kept outside Redis), HttpOnly, SameSite=Strict, with
an expiry inside the signed payload. Each session carries its own CSRF token, put in every form the console serves
and compared on every POST: a page of another site can neither read the cookie nor guess the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

SESSION_COOKIE = "gw_console"
LOGIN_COOKIE = "gw_console_login"  # double-submit token of the sign-in form, before any session exists


@dataclass(frozen=True)
class Session:
    operator_id: str
    csrf: str
    expires_at: int
    # Set for a sign-in with the identity service whose role came from a token claim (no operators file entry).
    role: str | None = None
    name: str = ""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, key: bytes, ttl_s: int) -> None:
        if len(key) < 32:
            raise ValueError(f"the console session key must have at least 32 bytes, got {len(key)}")
        self.key = key
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest())

    def sign(self, data: dict[str, Any]) -> str:
        """A cookie value carrying `data` (with an `exp`), readable by anyone, alterable by no one without the key."""
        payload = _b64(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{payload}.{self._mac(payload)}"

    def verified(self, cookie: str | None) -> dict[str, Any] | None:
        """The data of a cookie this gateway signed whose `exp` has not passed; None for anything else."""
        if not cookie or len(cookie) > 2048 or not cookie.isascii():
            return None
        payload, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            fresh = isinstance(data, dict) and int(data["exp"]) > time.time()
        except (ValueError, KeyError, TypeError):
            return None
        return data if fresh else None

    def issue(self, operator_id: str, *, role: str | None = None, name: str = "") -> tuple[str, Session]:
        session = Session(operator_id, secrets.token_urlsafe(24), int(time.time()) + self.ttl_s, role, name)
        data: dict[str, Any] = {"sub": session.operator_id, "csrf": session.csrf, "exp": session.expires_at}
        if role:
            data.update(role=role, name=name)
        return self.sign(data), session

    def open(self, cookie: str | None) -> Session | None:
        """The session of a cookie this gateway signed and that has not expired; None for anything else."""
        data = self.verified(cookie)
        if data is None:
            return None
        try:
            return Session(str(data["sub"]), str(data["csrf"]), int(data["exp"]),
                           str(data["role"]) if data.get("role") else None, str(data.get("name", "")))
        except (KeyError, TypeError, ValueError):
            return None


def same_token(sent: str | None, expected: str) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(str(sent).encode(), expected.encode())
