"""The task streams (one per shard, a consumer group of workers on each), their delayed sets, the dead-letter sets,
and the depths of every shard's queues summed for ops."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.observability.tracing import current_traceparent
from gateway.store import keys, scripts
from gateway.store.connection import StrRedis
from gateway.store.consumer import Entry, StreamConsumer, autoclaim_entries

PROMOTE_EVERY_S = 0.05  # delayed messages are back-offs, polls and timers: due to within 50 ms is on time


@dataclass(frozen=True)
class TaskMessage:
    message_id: str
    case_id: str
    matter: str
    kind: str  # "documents" | "submit" | "poll" | "certificate" | "step_timer"
    traceparent: str = ""  # the step that queued it (empty when tracing is off, and for delayed messages)


def message_of(entry: Entry) -> TaskMessage | None:
    message_id, fields = entry
    if not fields:  # Redis 6.2 returns deleted entries as nil inside XAUTOCLAIM replies
        return None
    return TaskMessage(message_id, fields["case_id"], fields["matter"], fields.get("kind", "submit"),
                       fields.get("traceparent", ""))


def delayed_member(case_id: str, matter: str, kind: str) -> str:
    return json.dumps({"case_id": case_id, "matter": matter, "kind": kind}, sort_keys=True)


def parse_autoclaim(reply: list[Any]) -> list[TaskMessage]:
    return [m for entry in autoclaim_entries(reply) for m in [message_of(entry)] if m is not None]


class TaskQueue:
    """What the engine puts on the task stream (now or later) and the dead-letter set; `stream` is this process's
    consumer of it."""

    def __init__(self, redis: StrRedis, consumer: str = "api", reclaim_idle_s: float = 30.0) -> None:
        self.redis = redis
        self.consumer = consumer
        self.stream = StreamConsumer(redis, keys.task_stream, keys.TASK_GROUP, consumer,
                                     reclaim_idle_s=reclaim_idle_s)
        self._promote = redis.register_script(scripts.PROMOTE_DUE)
        self._promoted_at = 0.0

    async def ensure_group(self) -> None:
        await self.stream.ensure_group()
        await StreamConsumer(self.redis, keys.outbox_stream, keys.OUTBOX_GROUP, self.consumer,
                             reclaim_idle_s=0).ensure_group()

    async def enqueue(self, case_id: str, matter: str, kind: str = "submit", delay_s: float = 0.0) -> None:
        if delay_s <= 0:
            fields = {"case_id": case_id, "matter": matter, "kind": kind}
            traceparent = current_traceparent()
            if traceparent:
                fields["traceparent"] = traceparent
            await self.redis.xadd(keys.task_stream(keys.shard_of(case_id)), fields)
            return
        # NX: the same pending message scheduled twice stays one message, at its earlier time. No traceparent in
        # the member (it would defeat NX): a delayed step continues its case's trace instead.
        await self.redis.zadd(keys.delayed(keys.shard_of(case_id)),
                              {delayed_member(case_id, matter, kind): time.time() + delay_s}, nx=True)

    async def enqueue_at(self, case_id: str, matter: str, kind: str, due_at: float) -> None:
        """A timer in the delayed set (in Redis, so it survives any restart): one per task and kind; set again,
        it only moves earlier (LT), and its step decides afresh what is due when it fires."""
        await self.redis.zadd(keys.delayed(keys.shard_of(case_id)), {delayed_member(case_id, matter, kind): due_at},
                              lt=True)

    async def promote_due(self, limit: int = 200) -> int:
        """Every shard's due messages (up to `limit` a shard) onto its task stream, at most every PROMOTE_EVERY_S
        (a busy worker reads back to back: looking at the delayed sets between every two reads would double its
        pipelines). One pipeline asks which shards have any due (a Cluster pipeline cannot carry scripts); the move
        runs only on those, concurrently."""
        now = time.time()
        if now - self._promoted_at < PROMOTE_EVERY_S:
            return 0
        self._promoted_at = now
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in keys.all_shards():
                pipe.zrangebyscore(keys.delayed(shard), "-inf", now, start=0, num=1)
            due = [shard for shard, first in zip(keys.all_shards(), await pipe.execute(), strict=True) if first]
        moved = await asyncio.gather(*(self._promote(keys=[keys.delayed(shard), keys.task_stream(shard)],
                                                     args=[now, limit]) for shard in due))
        return sum(int(n) for n in moved)

    async def read(self, count: int, block_ms: int) -> list[TaskMessage]:
        return [m for entry in await self.stream.read(count, block_ms) for m in [message_of(entry)] if m]

    async def reclaim(self, min_idle_ms: int, count: int = 50) -> list[TaskMessage]:
        """Take over messages a dead (or stuck) worker read but never acknowledged."""
        entries = await self.stream.reclaim(count, min_idle_s=min_idle_ms / 1000)
        return [m for entry in entries for m in [message_of(entry)] if m]

    async def keep_alive(self, message_ids: list[str]) -> None:
        await self.stream.keep_alive(message_ids)

    async def ack(self, message_id: str) -> None:
        await self.stream.ack(message_id)

    async def pending_count(self) -> int:
        return await self.stream.pending_count()

    async def dead_letter(self, case_id: str, matter: str) -> None:
        await self.redis.zadd(keys.dlq(keys.shard_of(case_id)), {f"{case_id}|{matter}": time.time()})

    async def dead_letters(self) -> list[tuple[str, str, float]]:
        """Every shard's dead letters, oldest first."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard in keys.all_shards():
                pipe.zrange(keys.dlq(shard), 0, -1, withscores=True)
            replies = await pipe.execute()
        entries = sorted((score, member) for reply in replies for member, score in reply)
        return [(case_id, matter, score) for score, member in entries for case_id, _, matter in [member.partition("|")]]

    async def forget_dead_letter(self, case_id: str, matter: str) -> None:
        await self.redis.zrem(keys.dlq(keys.shard_of(case_id)), f"{case_id}|{matter}")


async def overdue_case_ids(redis: StrRedis, limit: int | None = None) -> list[str]:
    """Open cases past their deadline, from every shard (at most `limit` from each)."""
    now, page = time.time(), {"start": 0, "num": limit} if limit else {}
    async with redis.pipeline(transaction=False) as pipe:
        for shard in keys.all_shards():
            pipe.zrangebyscore(keys.open_cases(shard), "-inf", now, **page)
        return [case_id for reply in await pipe.execute() for case_id in reply]


async def stream_consumers(redis: StrRedis) -> list[dict[str, Any]]:
    """The task streams' consumers, each with what it holds on every shard and its least idle time."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in keys.all_shards():
            pipe.xinfo_consumers(keys.task_stream(shard), keys.TASK_GROUP)
        replies = await pipe.execute(raise_on_error=False)
    merged: dict[str, dict[str, Any]] = {}
    for reply in replies:
        for c in [] if isinstance(reply, Exception) else reply:
            seen = merged.setdefault(c["name"], {"name": c["name"], "pending": 0, "idle": int(c["idle"])})
            seen["pending"] += int(c["pending"])
            seen["idle"] = min(seen["idle"], int(c["idle"]))
    return sorted(merged.values(), key=lambda c: c["name"])


@dataclass(frozen=True)
class Depths:
    """Every shard's queues and indexes, summed."""

    tasks: int  # task stream entries
    tasks_pending: int  # read by a worker, not yet acknowledged
    delayed: int
    dead_letters: int
    outbox: int  # outbox entries (events not yet delivered)
    outbox_pending: int
    open_cases: int
    overdue_cases: int  # open cases past their deadline
    outbox_parked: int


async def depths(redis: StrRedis) -> Depths:
    """One pipeline over every shard (one round trip per Cluster node)."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        for shard in keys.all_shards():
            pipe.xlen(keys.task_stream(shard))
            pipe.xpending(keys.task_stream(shard), keys.TASK_GROUP)
            pipe.zcard(keys.delayed(shard))
            pipe.zcard(keys.dlq(shard))
            pipe.xlen(keys.outbox_stream(shard))
            pipe.xpending(keys.outbox_stream(shard), keys.OUTBOX_GROUP)
            pipe.zcard(keys.open_cases(shard))
            pipe.zcount(keys.open_cases(shard), "-inf", now)
        pipe.llen(keys.OUTBOX_DEAD)
        replies = await pipe.execute(raise_on_error=False)
    values: list[Any] = [0 if isinstance(r, Exception) else r for r in replies]  # no group yet: nothing pending
    per_shard, parked = values[:-1], values[-1]
    columns = [per_shard[i::8] for i in range(8)]
    pending = [sum(int(info["pending"]) for info in column if info) for column in (columns[1], columns[5])]
    return Depths(tasks=sum(columns[0]), tasks_pending=pending[0], delayed=sum(columns[2]),
                  dead_letters=sum(columns[3]), outbox=sum(columns[4]), outbox_pending=pending[1],
                  open_cases=sum(columns[6]), overdue_cases=sum(columns[7]), outbox_parked=int(parked))
