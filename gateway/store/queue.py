"""The task stream (a consumer group of workers), its delayed set, and the dead-letter set."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from gateway.store import keys, scripts
from gateway.store.connection import StrRedis


@dataclass(frozen=True)
class TaskMessage:
    message_id: str
    case_id: str
    matter: str
    kind: str  # "submit" | "poll"


def _message(message_id: str, fields: Any) -> TaskMessage | None:
    if not fields:  # Redis 6.2 returns deleted entries as nil inside XAUTOCLAIM replies
        return None
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return TaskMessage(message_id, fields["case_id"], fields["matter"], fields.get("kind", "submit"))


def autoclaim_entries(reply: list[Any]) -> list[tuple[str, dict[str, str]]]:
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


def parse_autoclaim(reply: list[Any]) -> list[TaskMessage]:
    return [m for mid, fields in autoclaim_entries(reply) for m in [_message(mid, fields)] if m is not None]


class TaskQueue:
    def __init__(self, redis: StrRedis, consumer: str = "api") -> None:
        self.redis = redis
        self.consumer = consumer
        self._promote = redis.register_script(scripts.PROMOTE_DUE)

    async def ensure_group(self) -> None:
        for stream, group in ((keys.TASK_STREAM, keys.TASK_GROUP), (keys.OUTBOX_STREAM, keys.OUTBOX_GROUP)):
            try:
                await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def enqueue(self, case_id: str, matter: str, kind: str = "submit", delay_s: float = 0.0) -> None:
        if delay_s <= 0:
            await self.redis.xadd(keys.TASK_STREAM, {"case_id": case_id, "matter": matter, "kind": kind})
            return
        member = json.dumps({"case_id": case_id, "matter": matter, "kind": kind}, sort_keys=True)
        # NX: the same pending message scheduled twice stays one message, at its earlier time.
        await self.redis.zadd(keys.DELAYED, {member: time.time() + delay_s}, nx=True)

    async def promote_due(self, limit: int = 200) -> int:
        return int(await self._promote(keys=[keys.DELAYED, keys.TASK_STREAM], args=[time.time(), limit]))

    async def read(self, count: int, block_ms: int) -> list[TaskMessage]:
        reply = await self.redis.xreadgroup(keys.TASK_GROUP, self.consumer, {keys.TASK_STREAM: ">"},
                                            count=count, block=block_ms)
        messages: list[TaskMessage] = []
        for _stream, entries in reply or []:
            for message_id, fields in entries:
                message = _message(message_id, fields)
                if message is not None:
                    messages.append(message)
        return messages

    async def reclaim(self, min_idle_ms: int, count: int = 50) -> list[TaskMessage]:
        """Take over messages a dead (or stuck) worker read but never acknowledged."""
        reply = await self.redis.execute_command("XAUTOCLAIM", keys.TASK_STREAM, keys.TASK_GROUP, self.consumer,
                                                 min_idle_ms, "0-0", "COUNT", count)
        return parse_autoclaim(reply)

    async def keep_alive(self, message_ids: list[str]) -> None:
        """Reset the idle time of messages this worker is still working on, so nobody reclaims a live step."""
        if message_ids:
            await self.redis.execute_command("XCLAIM", keys.TASK_STREAM, keys.TASK_GROUP, self.consumer, 0,
                                             *message_ids, "JUSTID")

    async def ack(self, message_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(keys.TASK_STREAM, keys.TASK_GROUP, message_id)
            pipe.xdel(keys.TASK_STREAM, message_id)
            await pipe.execute()

    async def count_failure(self, message_id: str) -> int:
        key = keys.step_failures(message_id)
        failures = int(await self.redis.incr(key))
        await self.redis.expire(key, 24 * 3600)
        return failures

    async def pending_count(self) -> int:
        info = await self.redis.xpending(keys.TASK_STREAM, keys.TASK_GROUP)
        return int(info["pending"]) if info else 0

    async def dead_letter(self, case_id: str, matter: str) -> None:
        await self.redis.zadd(keys.DLQ, {f"{case_id}|{matter}": time.time()})

    async def dead_letters(self) -> list[tuple[str, str, float]]:
        entries = await self.redis.zrange(keys.DLQ, 0, -1, withscores=True)
        return [(*member.split("|", 1), score) for member, score in entries]

    async def forget_dead_letter(self, case_id: str, matter: str) -> None:
        await self.redis.zrem(keys.DLQ, f"{case_id}|{matter}")
