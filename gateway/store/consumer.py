"""One consumer-group loop for every stream the gateway consumes: the task stream (workers) and the outbox
(dispatchers).

A consumer reads new entries, keeps the entries in its hands alive (so nobody takes over a slow step), reclaims the
entries a dead consumer left (idle longer than `reclaim_idle_s`), counts the crashes of each entry (a poison entry is
given up after `max_failures`) and acknowledges an entry atomically (XACK and XDEL in one script).

Entries that share an ordering key (one case's events) are handled one after the other in stream order; a handler
answering False stops its key's chain there, and the entries after it come back later by reclaim, still in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import RedisError, ResponseError

from gateway.store import keys, scripts
from gateway.store.connection import StrRedis

log = structlog.get_logger("gateway.consumer")

Entry = tuple[str, dict[str, str]]  # (entry id, fields)
IDLE_WAIT_MS = 50  # the longest wait between two reads of an idle consumer


def autoclaim_entries(reply: list[Any]) -> list[Entry]:
    """XAUTOCLAIM answers [next, entries] on Redis 6.2 and [next, entries, deleted] on Redis 7: read both.

    Redis 6.2 also lists entries deleted meanwhile as [id, nil]; they are dropped here.
    """
    entries = []
    for entry in reply[1]:
        if entry and entry[1]:
            fields = entry[1]
            if isinstance(fields, list):
                fields = dict(zip(fields[::2], fields[1::2], strict=True))
            entries.append((str(entry[0]), fields))
    return entries


def entry_id(shard: int, stream_id: str) -> str:
    """An entry's id across shards: stream ids are unique only within their own shard's stream."""
    return f"{shard}/{stream_id}"


def split_entry_id(entry_id: str) -> tuple[int, str]:
    shard, _, stream_id = entry_id.partition("/")
    return int(shard), stream_id


class StreamConsumer:
    """One named consumer of a consumer group on every shard's stream (`stream_of(shard)`, gateway/store/keys.py).

    Each shard's stream is its own Cluster slot, and a command naming streams of several slots is refused
    (CROSSSLOT), so one blocking XREADGROUP over all shards is impossible. A read instead sends one non-blocking
    XREADGROUP per shard in one pipeline (one round trip per node; on a single Redis one round trip), shares the
    entries it may take among the shards, starting from the next shard each time (no shard waits behind a busy one),
    and once every shard was found empty waits a little before the next round: 2 ms, doubling up to IDLE_WAIT_MS
    (or `block_ms` if shorter). An idle consumer costs one pipeline per IDLE_WAIT_MS (16 empty reads: microseconds of
    Redis time) and takes a new entry within IDLE_WAIT_MS; a busy one reads back to back.
    """

    def __init__(self, redis: StrRedis, stream_of: Callable[[int], str], group: str, consumer: str, *,
                 reclaim_idle_s: float) -> None:
        self.redis = redis
        self.stream_of = stream_of
        self.group = group
        self.consumer = consumer
        self.reclaim_idle_s = reclaim_idle_s
        self.name = stream_of(0).rpartition(":")[2]  # for logs: "tasks", "outbox"
        self._next_shard = 0
        self._empty_shards = 0  # shards read in a row that had nothing
        self._idle_rounds = 0
        self._ack_delete = redis.register_script(scripts.ACK_DELETE)

    async def ensure_group(self) -> None:
        for shard in keys.all_shards():
            try:
                await self.redis.xgroup_create(self.stream_of(shard), self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _shares(self, count: int) -> list[tuple[int, int]]:
        """(shard, how many to read) for `count` entries, from the next shard in turn."""
        shards = keys.shard_count()
        base, extra = divmod(count, shards)
        first = self._next_shard
        shares = [((first + i) % shards, base + (1 if i < extra else 0)) for i in range(min(count, shards))]
        self._next_shard = (first + len(shares)) % shards
        return shares

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        shares = self._shares(count)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, share in shares:
                pipe.xreadgroup(self.group, self.consumer, {self.stream_of(shard): ">"}, count=share)
            replies = await pipe.execute()
        entries = [(entry_id(shard, mid), fields) for (shard, _), reply in zip(shares, replies, strict=True)
                   for _stream, items in reply or [] for mid, fields in items if fields]
        if entries:
            self._empty_shards = self._idle_rounds = 0
            return entries
        self._empty_shards += len(shares)
        if self._empty_shards >= keys.shard_count():  # a whole turn of the shards found nothing: wait a little
            self._empty_shards = 0
            await asyncio.sleep(min(block_ms, IDLE_WAIT_MS, 2 << min(self._idle_rounds, 16)) / 1000)
            self._idle_rounds += 1
        return entries

    async def reclaim(self, count: int = 50, min_idle_s: float | None = None) -> list[Entry]:
        """Take over entries a dead (or stuck) consumer read but never acknowledged, up to `count` per round
        shared among the shards."""
        idle_ms = int((self.reclaim_idle_s if min_idle_s is None else min_idle_s) * 1000)
        per_shard = -(-count // keys.shard_count())
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in keys.all_shards():
                pipe.execute_command("XAUTOCLAIM", self.stream_of(shard), self.group, self.consumer, idle_ms,
                                     "0-0", "COUNT", per_shard)
            replies = await pipe.execute()
        return [(entry_id(shard, mid), fields) for shard, reply in enumerate(replies)
                for mid, fields in autoclaim_entries(reply)]

    async def keep_alive(self, entry_ids: list[str]) -> None:
        """Reset the idle time of entries this consumer is still working on, so nobody reclaims a live step."""
        by_shard: dict[int, list[str]] = {}
        for shard, stream_id in map(split_entry_id, entry_ids):
            by_shard.setdefault(shard, []).append(stream_id)
        if not by_shard:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, stream_ids in by_shard.items():
                pipe.execute_command("XCLAIM", self.stream_of(shard), self.group, self.consumer, 0, *stream_ids,
                                     "JUSTID")
            await pipe.execute()

    async def ack(self, entry_id: str) -> None:
        shard, stream_id = split_entry_id(entry_id)
        await self._ack_delete(keys=[self.stream_of(shard)], args=[self.group, stream_id])

    async def count_failure(self, entry_id: str) -> int:
        key = keys.step_failures(entry_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 24 * 3600)
            failures, _ = await pipe.execute()
        return int(failures)

    async def pending_count(self) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in keys.all_shards():
                pipe.xpending(self.stream_of(shard), self.group)
            replies = await pipe.execute()
        return sum(int(info["pending"]) for info in replies if info)


@dataclass
class ConsumerLoop:
    """Drives a StreamConsumer: at most `concurrency` entries in hand, each handled by `handle`.

    `handle(entry)` answers True when the entry is done with (it is then acknowledged) and False when it must wait
    (it stays pending and returns by reclaim). An exception counts a failure; after `max_failures` the entry is
    handed to `give_up` and acknowledged, so bad data never loops for ever.
    """

    consumer: StreamConsumer
    handle: Callable[[Entry], Awaitable[bool]]
    give_up: Callable[[Entry, Exception], Awaitable[None]]
    order_key: Callable[[Entry], str]
    concurrency: int
    max_failures: int = 5
    block_ms: int = 200
    each_round: Callable[[], Awaitable[object]] | None = None  # before every read: due delayed messages
    housekeeping: Callable[[], Awaitable[None]] | None = None  # every keep-alive period: gauges

    def __post_init__(self) -> None:
        self.in_hand: set[str] = set()
        self.chains: dict[str, deque[Entry]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        every = max(0.05, self.consumer.reclaim_idle_s / 4)
        last = 0.0
        while not stop.is_set():
            try:
                entries: list[Entry] = []
                if self.each_round is not None:
                    await self.each_round()
                if time.monotonic() - last > every:
                    last = time.monotonic()
                    await self.consumer.keep_alive(list(self.in_hand))
                    entries += [e for e in await self.consumer.reclaim() if e[0] not in self.in_hand]
                    if self.housekeeping is not None:
                        await self.housekeeping()
                free = self.concurrency - len(self.in_hand) - len(entries)
                if free > 0:
                    entries += await self.consumer.read(free, min(self.block_ms, int(every * 1000)))
                elif not entries:
                    await asyncio.wait(self.tasks, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
                self.take(entries)
            except (RedisError, OSError) as exc:
                log.warning("consumer lost Redis, retrying", stream=self.consumer.name, error=type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:  # the loop must outlive any one bad entry; it stays pending
                log.exception("consumer loop error", stream=self.consumer.name)
                await asyncio.sleep(1)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=30)

    def take(self, entries: list[Entry]) -> None:
        """Put entries in hand: each joins its key's chain, started if none runs."""
        for entry in entries:
            if entry[0] in self.in_hand:
                continue
            self.in_hand.add(entry[0])
            key = self.order_key(entry)
            if key in self.chains:
                self.chains[key].append(entry)
                continue
            self.chains[key] = deque([entry])
            task = asyncio.create_task(self._chain(key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _chain(self, key: str) -> None:
        chain = self.chains[key]
        try:
            while chain:
                entry = chain.popleft()
                try:
                    done = await self._one(entry)
                finally:
                    self.in_hand.discard(entry[0])
                if not done:
                    break
        finally:
            for left in chain:  # not handled here: they stay pending and come back by reclaim, in order
                self.in_hand.discard(left[0])
            del self.chains[key]

    async def _one(self, entry: Entry) -> bool:
        try:
            if await self.handle(entry):
                await self.consumer.ack(entry[0])
                return True
            return False
        except Exception as exc:
            try:
                failures = await self.consumer.count_failure(entry[0])
            except (RedisError, OSError):  # Redis itself is away: the entry simply stays pending
                log.error("step failed and Redis is unreachable", stream=self.consumer.name, entry=entry[0])
                return False
            log.error("step failed", stream=self.consumer.name, entry=entry[0], failures=failures,
                      error=f"{type(exc).__name__}: {str(exc)[:200]}")
            if failures < self.max_failures:
                return False
            await self.give_up(entry, exc)
            await self.consumer.ack(entry[0])
            return True
