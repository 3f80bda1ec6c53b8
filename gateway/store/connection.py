"""One Redis for everything: the configured one, or the embedded one under var/."""

from __future__ import annotations

from typing import Any, TypeAlias

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


def connect(url: str) -> StrRedis:
    return aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30, socket_timeout=10,
                                   socket_connect_timeout=5, retry_on_timeout=True)
