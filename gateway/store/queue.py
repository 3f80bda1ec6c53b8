"""The task stream (a consumer group of workers), its delayed set, and the dead-letter set."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.observability.tracing import current_traceparent
from gateway.store import keys, scripts
from gateway.store.connection import StrRedis
from gateway.store.consumer import Entry, StreamConsumer, autoclaim_entries


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
        self.stream = StreamConsumer(redis, keys.TASK_STREAM, keys.TASK_GROUP, consumer,
                                     reclaim_idle_s=reclaim_idle_s)
        self._promote = redis.register_script(scripts.PROMOTE_DUE)

    async def ensure_group(self) -> None:
        await self.stream.ensure_group()
        await StreamConsumer(self.redis, keys.OUTBOX_STREAM, keys.OUTBOX_GROUP, self.consumer,
                             reclaim_idle_s=0).ensure_group()

    async def enqueue(self, case_id: str, matter: str, kind: str = "submit", delay_s: float = 0.0) -> None:
        if delay_s <= 0:
            fields = {"case_id": case_id, "matter": matter, "kind": kind}
            traceparent = current_traceparent()
            if traceparent:
                fields["traceparent"] = traceparent
            await self.redis.xadd(keys.TASK_STREAM, fields)
            return
        # NX: the same pending message scheduled twice stays one message, at its earlier time. No traceparent in
        # the member (it would defeat NX): a delayed step continues its case's trace instead.
        await self.redis.zadd(keys.DELAYED, {delayed_member(case_id, matter, kind): time.time() + delay_s}, nx=True)

    async def enqueue_at(self, case_id: str, matter: str, kind: str, due_at: float) -> None:
        """A timer in the delayed set (in Redis, so it survives any restart): one per task and kind; set again,
        it only moves earlier (LT), and its step decides afresh what is due when it fires."""
        await self.redis.zadd(keys.DELAYED, {delayed_member(case_id, matter, kind): due_at}, lt=True)

    async def promote_due(self, limit: int = 200) -> int:
        return int(await self._promote(keys=[keys.DELAYED, keys.TASK_STREAM], args=[time.time(), limit]))

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
        await self.redis.zadd(keys.DLQ, {f"{case_id}|{matter}": time.time()})

    async def dead_letters(self) -> list[tuple[str, str, float]]:
        entries = await self.redis.zrange(keys.DLQ, 0, -1, withscores=True)
        return [(*member.split("|", 1), score) for member, score in entries]

    async def forget_dead_letter(self, case_id: str, matter: str) -> None:
        await self.redis.zrem(keys.DLQ, f"{case_id}|{matter}")
