"""Opaque, short-lived H5 links: what the applicant gets by SMS for a department step (pay, deposit, photo).

The token is a random id and nothing else: the case, matter and step it opens live in Redis under a key derived
from the token with the link secret (so reading Redis yields no usable token). Payment, deposit and photo links
open once; every link expires after `GATEWAY_LINK_TTL_S`; a task's links are revoked when it ends. The gateway
redirects only to a department page on that adapter's allow-list (https; http on loopback in development).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.sdk import AdapterSettings
from gateway.security.signing import hmac_hex
from gateway.store import keys
from gateway.store.connection import StrRedis

# Steps that hand over money or a photo: a forwarded or leaked SMS must not open them a second time.
SINGLE_USE_STEPS = frozenset({"payment", "deposit", "photo"})
_TOKEN_BYTES = 24


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
    single_use: bool


class LinkStore:
    def __init__(self, redis: StrRedis, secret: bytes, base_url: str, ttl_s: int) -> None:
        self.redis = redis
        self.secret = secret
        self.base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s

    def _key(self, token: str) -> str:
        return keys.h5_link(hmac_hex(self.secret, token.encode()))

    async def issue(self, case_id: str, matter: str, step: str) -> str:
        """A new link for one step of one task: its URL on this gateway."""
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        key = self._key(token)
        target = {"case_id": case_id, "matter": matter, "step": step, "expires_at": int(time.time()) + self.ttl_s,
                  "single_use": step in SINGLE_USE_STEPS}
        async with self.redis.pipeline(transaction=False) as pipe:  # the keys live on different slots
            pipe.set(key, json.dumps(target), ex=self.ttl_s)
            pipe.sadd(keys.task_links(case_id, matter), key)
            pipe.expire(keys.task_links(case_id, matter), self.ttl_s)
            await pipe.execute()
        return f"{self.base_url}/h5/{token}"

    async def look_up(self, token: str) -> LinkTarget:
        """What a token opens; InvalidLink when it never existed, expired, was used or revoked (one answer)."""
        if not 16 <= len(token) <= 64 or not token.isascii():
            raise InvalidLink("link.invalid", "link is not a gateway link")
        raw = await self.redis.get(self._key(token))
        if raw is None:
            raise InvalidLink("link.invalid", "link is unknown, expired, already used or revoked")
        value = json.loads(raw)
        return LinkTarget(str(value["case_id"]), str(value["matter"]), str(value["step"]), int(value["expires_at"]),
                          bool(value["single_use"]))

    async def consume(self, token: str, target: LinkTarget) -> None:
        """Spend a single-use link; of two browsers racing, one wins and the other gets InvalidLink."""
        if target.single_use and not await self.redis.delete(self._key(token)):
            raise InvalidLink("link.invalid", "link is unknown, expired, already used or revoked")

    async def revoke_task(self, case_id: str, matter: str) -> int:
        """Revoke every link of a task (it ended, or ops withdrew them); answers how many were still open."""
        index = keys.task_links(case_id, matter)
        link_keys = list(await self.redis.smembers(index))
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in link_keys:
                pipe.delete(key)
            pipe.delete(index)
            deleted = await pipe.execute()
        return sum(int(n) for n in deleted[:-1])


def redirect_hosts(settings: AdapterSettings) -> frozenset[str]:
    """The hosts an adapter's H5 pages may live on: its setting, else the host of its base_url."""
    if settings.redirect_hosts:
        return frozenset(host.lower() for host in settings.redirect_hosts)
    host = urlsplit(settings.base_url).hostname
    return frozenset({host.lower()} if host else set())


def redirect_allowed(url: str, allowed_hosts: frozenset[str], *, development: bool) -> bool:
    """https to an allowed host; plain http only in development and only to a loopback host (the mocks)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return False
    if host not in allowed_hosts or parts.username or parts.password:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and development and _loopback(host)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
