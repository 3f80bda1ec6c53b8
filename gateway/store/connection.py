"""One Redis for everything: the configured one, or the embedded one under var/."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis

from gateway.settings import Settings
from gateway.store.embedded_redis import EmbeddedRedis


def resolve_redis_url(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The URL to use, and the embedded server this process started (None if external or already running)."""
    if settings.redis_url:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.var_dir / "redis")
    already_running = embedded.alive()
    url = embedded.start()
    return url, None if already_running else embedded


# redis-py types every reply as `bytes | str`; we always connect with decode_responses=True, so replies are str.
# Code that holds a connection says so with this alias instead of casting at every call.
StrRedis: TypeAlias = Any


def connect(url: str, ca_file: Path | None = None) -> StrRedis:
    """`url` may be `rediss://:PASSWORD@host:port/db` (TLS and AUTH); `ca_file` is the CA of its server certificate."""
    tls: dict[str, Any] = {"ssl_ca_certs": str(ca_file)} if ca_file and url.startswith("rediss://") else {}
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_timeout=10,
                                   socket_connect_timeout=5, retry_on_timeout=True, **tls)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
