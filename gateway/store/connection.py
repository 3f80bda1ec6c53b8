"""One Redis for everything: the configured one, or the embedded one under var/."""

from __future__ import annotations

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


def connect(url: str, settings: Settings) -> StrRedis:
    """A client whose pool waits up to `redis_pool_timeout_s` for a free connection when all
    `redis_max_connections` are busy, then raises redis.ConnectionError (the API answers 503 service.busy).
    redis-py's default pool raises at once instead (MaxConnectionsError), which turned bursts into 500s.

    `url` may be `rediss://:PASSWORD@host:port/db` (TLS and AUTH); `redis_ca_file` is the CA of its server
    certificate."""
    tls: dict[str, Any] = ({"ssl_ca_certs": str(settings.redis_ca_file)}
                           if settings.redis_ca_file and url.startswith("rediss://") else {})
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=settings.redis_max_connections, timeout=settings.redis_pool_timeout_s,
        decode_responses=True, health_check_interval=30, socket_timeout=10, socket_connect_timeout=5,
        retry_on_timeout=True, **tls)
    return aioredis.Redis.from_pool(pool)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
