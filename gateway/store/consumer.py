"""One consumer-group loop for every stream the gateway consumes: the task stream (workers) and the outbox
(dispatchers).

A consumer reads new entries, keeps the entries in its hands alive (so nobody takes over a slow step), reclaims the
entries a dead consumer left (idle longer than `reclaim_idle_s`), counts the crashes of each entry (a poison entry is
given up after `max_failures`) and acknowledges an entry atomically (XACK and XDEL in one MULTI).

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

from gateway.store import keys
from gateway.store.connection import StrRedis

log = structlog.get_logger("gateway.consumer")

Entry = tuple[str, dict[str, str]]  # (entry id, fields)


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


class StreamConsumer:
    """One named consumer of one stream's consumer group."""

    def __init__(self, redis: StrRedis, stream: str, group: str, consumer: str, *, reclaim_idle_s: float) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.reclaim_idle_s = reclaim_idle_s

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        reply = await self.redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count,
                                           block=block_ms)
        return [(mid, fields) for _stream, items in reply or [] for mid, fields in items if fields]

    async def reclaim(self, count: int = 50, min_idle_s: float | None = None) -> list[Entry]:
        """Take over entries a dead (or stuck) consumer read but never acknowledged."""
        idle_ms = int((self.reclaim_idle_s if min_idle_s is None else min_idle_s) * 1000)
        reply = await self.redis.execute_command("XAUTOCLAIM", self.stream, self.group, self.consumer, idle_ms,
                                                 "0-0", "COUNT", count)
        return autoclaim_entries(reply)

    async def keep_alive(self, entry_ids: list[str]) -> None:
        """Reset the idle time of entries this consumer is still working on, so nobody reclaims a live step."""
        if entry_ids:
            await self.redis.execute_command("XCLAIM", self.stream, self.group, self.consumer, 0, *entry_ids,
                                             "JUSTID")

    async def ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def count_failure(self, entry_id: str) -> int:
        key = keys.step_failures(entry_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 24 * 3600)
            failures, _ = await pipe.execute()
        return int(failures)

    async def pending_count(self) -> int:
        info = await self.redis.xpending(self.stream, self.group)
        return int(info["pending"]) if info else 0


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
                log.warning("consumer lost Redis, retrying", stream=self.consumer.stream, error=type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:  # the loop must outlive any one bad entry; it stays pending
                log.exception("consumer loop error", stream=self.consumer.stream)
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
                log.error("step failed and Redis is unreachable", stream=self.consumer.stream, entry=entry[0])
                return False
            log.error("step failed", stream=self.consumer.stream, entry=entry[0], failures=failures,
                      error=f"{type(exc).__name__}: {str(exc)[:200]}")
            if failures < self.max_failures:
                return False
            await self.give_up(entry, exc)
            await self.consumer.ack(entry[0])
            return True
