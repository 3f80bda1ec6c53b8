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

SESSION_COOKIE = "gw_console"
LOGIN_COOKIE = "gw_console_login"  # double-submit token of the sign-in form, before any session exists


@dataclass(frozen=True)
class Session:
    operator_id: str
    csrf: str
    expires_at: int


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

    def issue(self, operator_id: str) -> tuple[str, Session]:
        session = Session(operator_id, secrets.token_urlsafe(24), int(time.time()) + self.ttl_s)
        payload = _b64(json.dumps({"sub": session.operator_id, "csrf": session.csrf, "exp": session.expires_at},
                                  separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}", session

    def open(self, cookie: str | None) -> Session | None:
        """The session of a cookie this gateway signed and that has not expired; None for anything else."""
        if not cookie or len(cookie) > 1024 or not cookie.isascii():
            return None
        payload, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(str(data["sub"]), str(data["csrf"]), int(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > time.time() else None


def same_token(sent: str | None, expected: str) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(str(sent).encode(), expected.encode())
