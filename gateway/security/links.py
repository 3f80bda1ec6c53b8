"""Signed, expiring H5 links: what the applicant gets by SMS for a department step (pay, deposit, photo).

The token names the task and the step, never the department's URL: the gateway verifies it when the browser comes
back and only then redirects to the department's page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


class InvalidLink(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LinkTarget:
    case_id: str
    matter: str
    step: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: bytes, base_url: str, ttl_s: int) -> None:
        self.secret = secret
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s

    def _mac(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()

    def token(self, case_id: str, matter: str, step: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + self.ttl_s)
        payload = _b64(json.dumps([case_id, matter, step, expires], separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def url(self, case_id: str, matter: str, step: str) -> str:
        return f"{self.base_url}/h5/{self.token(case_id, matter, step)}"

    def verify(self, token: str, now: float | None = None) -> LinkTarget:
        payload, _, mac = token.partition(".")
        if not payload or not hmac.compare_digest(self._mac(payload), mac):
            raise InvalidLink("link.forged", "link signature does not verify")
        try:
            case_id, matter, step, expires = json.loads(_unb64(payload))
        except (ValueError, TypeError) as exc:
            raise InvalidLink("link.malformed", "link payload unreadable") from exc
        if (now or time.time()) > int(expires):
            raise InvalidLink("link.expired", "link has expired")
        return LinkTarget(str(case_id), str(matter), str(step), int(expires))
