"""One Redis for everything: the configured one (a server, a Sentinel-watched primary or a Cluster), or the embedded
one under var/."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.settings import Settings
from gateway.store import keys
from gateway.store.embedded_redis import EmbeddedRedis

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"  # redis+cluster://[:PASSWORD@]host:port (rediss+cluster:// with TLS): any node


def resolve_redis_url(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The URL to use, and the embedded server this process started (None if external or already running)."""
    if settings.redis_sentinels and settings.redis_master_name:
        return sentinel_url(settings.redis_sentinels, settings.redis_master_name, settings.redis_url), None
    if settings.redis_cluster:
        if not settings.redis_url:
            raise ValueError("GATEWAY_REDIS_CLUSTER=1 needs GATEWAY_REDIS_URL naming one node of the cluster")
        return cluster_url(settings.redis_url), None
    if settings.redis_url:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.var_dir / "redis")
    already_running = embedded.alive()
    url = embedded.start()
    return url, None if already_running else embedded


# redis-py types every reply as `bytes | str`; we always connect with decode_responses=True, so replies are str.
# Code that holds a connection says so with this alias instead of casting at every call.
StrRedis: TypeAlias = Any


def sentinel_url(sentinels: str, master_name: str, redis_url: str | None = None) -> str:
    """`redis+sentinel://[:PASSWORD@]host:port,host:port/MASTER/DB`: one string, like a plain URL, so every command
    passes it on the same way. The password and database number come from `redis_url` when it is set."""
    plain = urlsplit(redis_url or "")
    auth = f":{plain.password}@" if plain.password else ""
    db = plain.path.strip("/") or "0"
    return f"{SENTINEL_SCHEME}://{auth}{sentinels.replace(' ', '')}/{master_name}/{db}"


def cluster_url(redis_url: str) -> str:
    """`redis+cluster://...` for a node's URL (already one: unchanged), so every command passes it on like a plain
    URL. A Cluster has only database 0: a database number in the URL is dropped."""
    scheme, _, rest = redis_url.partition("://")
    if scheme.endswith("+cluster"):
        return redis_url
    return f"{'rediss' if scheme == 'rediss' else 'redis'}+cluster://{rest.partition('/')[0]}"


def cluster_node_url(url: str) -> str | None:
    """The plain node URL inside a `redis+cluster://` URL; None for any other URL."""
    scheme, _, rest = url.partition("://")
    if not scheme.endswith("+cluster"):
        return None
    return f"{scheme.removesuffix('+cluster')}://{rest}"


_T = TypeVar("_T")


class _Admission:
    """RedisCluster keeps at most `max_connections` per node and raises MaxConnectionsError past them, without
    waiting. Admitting at most that many commands (or pipelines) of this process at once, each waiting up to
    `timeout` for its turn, gives the cluster client the blocking pool's behaviour: a burst waits, then is answered
    503 service.busy (redis.ConnectionError); no node's connections are ever exhausted."""

    def __init__(self, limit: int, timeout: float) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.timeout = timeout

    async def run(self, call: Callable[[], Awaitable[_T]]) -> _T:
        try:
            await asyncio.wait_for(self.slots.acquire(), self.timeout)
        except TimeoutError:
            raise RedisConnectionError(f"no free Redis connection within {self.timeout} s") from None
        try:
            return await call()
        finally:
            self.slots.release()


class _AdmittedPipeline(ClusterPipeline):
    admission: _Admission

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        return await self.admission.run(partial(ClusterPipeline.execute, self, raise_on_error, allow_redirections))


class AdmittedCluster(RedisCluster):
    """A RedisCluster whose commands and pipelines wait their turn (see _Admission)."""

    admission: _Admission

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await self.admission.run(partial(RedisCluster.execute_command, self, *args, **kwargs))

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        pipe = _AdmittedPipeline(self, transaction)  # type: ignore[abstract]  # as RedisCluster.pipeline makes it
        pipe.admission = self.admission
        return pipe


def connect_cluster(node_url: str, settings: Settings) -> StrRedis:
    client: AdmittedCluster
    tls: dict[str, Any] = ({"ssl_ca_certs": str(settings.redis_ca_file)}
                           if settings.redis_ca_file and node_url.startswith("rediss://") else {})
    client = AdmittedCluster.from_url(  # type: ignore[assignment]  # from_url builds this class
        node_url, max_connections=settings.redis_max_connections, decode_responses=True,
        health_check_interval=30, socket_timeout=10, socket_connect_timeout=5, **tls)
    client.admission = _Admission(settings.redis_max_connections, settings.redis_pool_timeout_s)
    return client


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: list[tuple[str, int]]
    master_name: str
    db: int
    password: str | None


def parse_sentinel_url(url: str) -> SentinelAddress | None:
    """The parts of a `redis+sentinel://` URL; None for any other URL."""
    scheme, _, rest = url.partition("://")
    if scheme != SENTINEL_SCHEME:
        return None
    auth, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    master_name, _, db = path.partition("/")
    sentinels = [(host, int(port)) for host, _, port in (h.rpartition(":") for h in hosts.split(",") if h)]
    return SentinelAddress(sentinels, master_name, int(db or 0), auth.partition(":")[2] or None)


def connect(url: str, settings: Settings) -> StrRedis:
    """A client whose pool waits up to `redis_pool_timeout_s` for a free connection when all
    `redis_max_connections` are busy, then raises redis.ConnectionError (the API answers 503 service.busy).
    redis-py's default pool raises at once instead (MaxConnectionsError), which turned bursts into 500s.

    `url` may be `rediss://:PASSWORD@host:port/db` (TLS and AUTH); `redis_ca_file` is the CA of its server
    certificate.

    A `redis+sentinel://` URL asks the Sentinels for the current primary, and again after a connection to it fails
    (a failover moved it). A `redis+cluster://` URL (GATEWAY_REDIS_CLUSTER=1) talks to a Redis Cluster through one
    of its nodes, which tells the client where every slot lives.

    Connecting also fixes this process's number of shards (GATEWAY_REDIS_SHARDS, gateway/store/keys.py)."""
    keys.use_shards(settings.redis_shards)
    node_url = cluster_node_url(url)
    if node_url:
        return connect_cluster(node_url, settings)
    address = parse_sentinel_url(url)
    if address:
        sentinel = Sentinel(address.sentinels, socket_timeout=2, socket_connect_timeout=2)
        return sentinel.master_for(address.master_name, db=address.db, password=address.password,
                                   max_connections=settings.redis_max_connections, decode_responses=True,
                                   health_check_interval=30, socket_timeout=10, socket_connect_timeout=5,
                                   retry_on_timeout=True)
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
