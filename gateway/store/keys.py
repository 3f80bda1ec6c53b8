"""Redis key names, laid out for Redis Cluster and the same on a single Redis.

The keyspace is cut into a fixed number of shards (GATEWAY_REDIS_SHARDS); every key of a shard carries the shard's
hash tag, so a shard is one Cluster slot. A case lives in one shard with everything its atomic steps touch: its hash,
tasks, audit chain, request-id index, the idempotency record that created it, and the shard's own task stream, outbox
stream, delayed set, dead-letter set and open-case index. Workers and dispatchers consume every shard.

A case id (and a task's department request id) carries its shard in its last 8 hex digits (value mod the number of
shards), so any process finds the shard from the id alone; an idempotency record's shard is a hash of caller and key,
and a new case's id is chosen in that shard. Keys that belong to no case (nonces, spent assertions, rate buckets,
breakers, H5 links, callback markers, heartbeats) are single-key (or single-tag) and live wherever they hash.

Changing the number of shards re-homes every case: it is a migration, not a setting to flip on a live system.
"""

from __future__ import annotations

import secrets
import zlib
from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

PREFIX = "gw"
DEFAULT_SHARDS = 16
TASK_GROUP = "workers"
OUTBOX_GROUP = "dispatchers"
OUTBOX_DEAD = f"{PREFIX}:outbox:dead"  # list: events no receiver accepted within the attempt bound
WORKERS = f"{PREFIX}:workers:"  # + consumer name: a worker's heartbeat (JSON), expiring when it stops
RETENTION_SWEEP = f"{PREFIX}:retention:sweep"  # held (expiring) by the worker that swept last: one sweep per interval
REPLICATION_FENCE = f"{PREFIX}:replication:fence"  # counter written only so WAIT can vouch for earlier writes
_SHARD_DIGITS = 8  # the trailing hex digits of an id that name its shard

_shards = DEFAULT_SHARDS


def use_shards(count: int) -> None:
    """The process's number of shards (GATEWAY_REDIS_SHARDS), set once when it connects to Redis."""
    global _shards
    if not 1 <= count <= REDIS_CLUSTER_HASH_SLOTS:
        raise ValueError(f"GATEWAY_REDIS_SHARDS must be 1..{REDIS_CLUSTER_HASH_SLOTS}, not {count}")
    _shards = count


def shard_count() -> int:
    return _shards


def all_shards() -> range:
    return range(_shards)


@cache
def _tag(shard: int, count: int) -> str:
    """Shard i's hash tag lands in the i-th equal part of the slot space, so an even slot split between masters (what
    `redis-cli --cluster create` and `rebalance` make) also splits the shards evenly."""
    low, high = shard * REDIS_CLUSTER_HASH_SLOTS // count, (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // count
    n = 0
    while not low <= key_slot(f"s{shard:02d}.{n}".encode()) < max(high, low + 1):
        n += 1
    return f"s{shard:02d}.{n}"


def shard_prefix(shard: int) -> str:
    """`gw:{s07.123}`: the start of every key of one shard."""
    return f"{PREFIX}:{{{_tag(shard, _shards)}}}"


def shard_of(identifier: str) -> int:
    """The shard of a case id or request id: its last 8 hex digits mod the shard count (a hash for any other text)."""
    try:
        return int(identifier[-_SHARD_DIGITS:], 16) % _shards
    except ValueError:
        return zlib.crc32(identifier.encode()) % _shards


def new_id_in_shard(shard: int, hex_digits: int = 32) -> str:
    """A random hex id whose shard is `shard` (its last 8 digits are chosen so)."""
    tail = secrets.randbits(4 * _SHARD_DIGITS)
    tail += (shard - tail) % _shards
    if tail >= 16 ** _SHARD_DIGITS:
        tail -= _shards
    return secrets.token_hex((hex_digits - _SHARD_DIGITS) // 2) + f"{tail:0{_SHARD_DIGITS}x}"


def idempotency_shard(app_id: str, key: str) -> int:
    """Where a caller's idempotency record lives, and so the case it creates."""
    return zlib.crc32(f"{app_id}\n{key}".encode()) % _shards


def task_stream(shard: int) -> str:
    return f"{shard_prefix(shard)}:tasks"


def outbox_stream(shard: int) -> str:
    return f"{shard_prefix(shard)}:outbox"


def delayed(shard: int) -> str:
    return f"{shard_prefix(shard)}:delayed"  # sorted set: stream message JSON scored by the time it becomes due


def dlq(shard: int) -> str:
    return f"{shard_prefix(shard)}:dlq"  # sorted set: "case_id|matter" scored by the time it failed


def open_cases(shard: int) -> str:
    return f"{shard_prefix(shard)}:cases:open"  # sorted set: case id scored by its deadline (unix seconds)


CASE_KEYS_PATTERN = f"{PREFIX}:{{*}}:c:*"  # SCAN: every key of every case, in every shard
CASE_PATTERN = f"{CASE_KEYS_PATTERN}:case"  # SCAN: every case hash


def _of_case(case_id: str) -> str:
    return f"{shard_prefix(shard_of(case_id))}:c:{case_id}"


def case(case_id: str) -> str:
    return f"{_of_case(case_id)}:case"


def task(case_id: str, matter: str) -> str:
    return f"{_of_case(case_id)}:task:{matter}"


def audit(case_id: str) -> str:
    return f"{_of_case(case_id)}:audit"


def certificate_lock(case_id: str) -> str:
    return f"{_of_case(case_id)}:certificate-lock"


def task_links(case_id: str, matter: str) -> str:
    return f"{_of_case(case_id)}:links:{matter}"


def idempotency(app_id: str, key: str) -> str:
    return f"{shard_prefix(idempotency_shard(app_id, key))}:idem:{app_id}:{key}"


def request_index(request_id: str) -> str:
    """In the shard of its case: a task's request id is chosen in its case's shard."""
    return f"{shard_prefix(shard_of(request_id))}:reqid:{request_id}"


def nonce(app_id: str, value: str) -> str:
    return f"{PREFIX}:nonce:{app_id}:{value}"


def assertion_used(issuer: str, jti: str) -> str:
    """A spent applicant assertion, kept until it expires: each one creates at most one case."""
    return f"{PREFIX}:assertion:{issuer}:{jti}"


def rate_bucket(app_id: str) -> str:
    return f"{PREFIX}:rate:{app_id}"  # hash: a caller's token bucket, shared by every API process


def caller_open_cases(app_id: str) -> str:
    return f"{PREFIX}:caller-open:{app_id}"  # sorted set: a caller's open case ids, scored by when they opened


def applicant_cases(shard: int, id_mac: str) -> str:
    """Sorted set: the case ids of one shard that one applicant's ID number opened, scored by creation time (unix
    seconds); keyed by the number's HMAC (gateway/security/applicant_index.py). In each case's shard, so it is written
    in the step that creates the case; a look-up reads every shard. No expiry: retention takes a case out of it."""
    return f"{shard_prefix(shard)}:applicant-cases:{id_mac}"


def breaker(adapter: str) -> str:
    return f"{PREFIX}:{{breaker:{adapter}}}"  # the tag keeps it in one slot with its probe key (one script)


def breaker_probe(adapter: str) -> str:
    """Held by the one caller that probes a half-open breaker."""
    return f"{breaker(adapter)}:probe"


def outbox_retry(event_id: str) -> str:
    return f"{PREFIX}:outbox:retry:{event_id}"


def outbox_done(event_id: str, channel: str) -> str:
    return f"{PREFIX}:outbox:done:{event_id}:{channel}"


def console_sign_in_failures(operator_id: str) -> str:
    return f"{PREFIX}:console:sign-in-failures:{operator_id}"  # counter, expiring: failed sign-ins of one id


def step_failures(message_id: str) -> str:
    return f"{PREFIX}:step-failures:{message_id}"


def h5_link(token_mac: str) -> str:
    """An H5 link's target, keyed by the HMAC of its token (the token itself is only in the SMS)."""
    return f"{PREFIX}:h5:{token_mac}"


def callback_seen(adapter: str, callback_id: str) -> str:
    return f"{PREFIX}:callback-seen:{adapter}:{callback_id}"


def worker_heartbeat(consumer: str) -> str:
    return WORKERS + consumer
