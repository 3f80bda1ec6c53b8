"""A worker: reads the task stream in the consumer group, runs each step, reclaims what dead workers left."""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.exceptions import RedisError

from gateway.bootstrap import Services
from gateway.observability.metrics import (
    DEAD_LETTER_SIZE,
    DELAYED_SIZE,
    OUTBOX_BACKLOG,
    OUTBOX_PARKED,
    OVERDUE_CASES,
    QUEUE_PENDING,
)
from gateway.store import keys
from gateway.store.queue import TaskMessage

log = structlog.get_logger("gateway.worker")
MAX_STEP_FAILURES = 5  # a step that crashes this often is a bug or bad data, not a passing fault


class Worker:
    def __init__(self, services: Services, concurrency: int | None = None) -> None:
        self.services = services
        self.concurrency = concurrency or services.settings.worker_concurrency
        self.inflight: set[asyncio.Task[None]] = set()
        self.running: set[str] = set()  # message ids in hand, so a reclaim never runs one twice in this process

    async def run(self, stop: asyncio.Event) -> None:
        queue = self.services.queue
        reclaim_every = max(1.0, self.services.settings.redeliver_after_s / 4)
        last_reclaim = 0.0
        log.info("worker started", consumer=queue.consumer, concurrency=self.concurrency)
        while not stop.is_set():
            try:
                await queue.promote_due()
                messages: list[TaskMessage] = []
                if time.monotonic() - last_reclaim > reclaim_every:
                    last_reclaim = time.monotonic()
                    await queue.keep_alive(list(self.running))
                    idle_ms = int(self.services.settings.redeliver_after_s * 1000)
                    messages += [m for m in await queue.reclaim(idle_ms) if m.message_id not in self.running]
                    await self._observe_backlogs()
                free = self.concurrency - len(self.inflight) - len(messages)
                if free > 0:
                    messages += await queue.read(count=free, block_ms=200)
                elif not messages:
                    await asyncio.wait(self.inflight, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
                for message in messages:
                    self._spawn(message)
            except (RedisError, OSError) as exc:
                log.warning("worker lost Redis, retrying", error=type(exc).__name__)
                await asyncio.sleep(1)
            except Exception:  # the loop must outlive any one bad step; the message stays pending
                log.exception("worker loop error")
                await asyncio.sleep(1)
        if self.inflight:
            await asyncio.wait(self.inflight, timeout=30)
        log.info("worker stopped", consumer=queue.consumer)

    async def _observe_backlogs(self) -> None:
        redis = self.services.redis
        QUEUE_PENDING.set(await self.services.queue.pending_count())
        # Open cases are scored by the end of their deadline day: a past score is an overdue case.
        OVERDUE_CASES.set(await redis.zcount(keys.OPEN_CASES, "-inf", time.time()))
        DEAD_LETTER_SIZE.set(await redis.zcard(keys.DLQ))
        DELAYED_SIZE.set(await redis.zcard(keys.DELAYED))
        outbox = await redis.xpending(keys.OUTBOX_STREAM, keys.OUTBOX_GROUP)
        OUTBOX_BACKLOG.set(int(outbox["pending"]) if outbox else 0)
        OUTBOX_PARKED.set(await redis.llen(keys.OUTBOX_DEAD))

    def _spawn(self, message: TaskMessage) -> None:
        self.running.add(message.message_id)
        task = asyncio.create_task(self._handle(message))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    async def _handle(self, message: TaskMessage) -> None:
        try:
            await self.services.engine.process(message)
            await self.services.queue.ack(message.message_id)
        except Exception as exc:
            # Not acknowledged: another worker (or this one) reclaims it after `redeliver_after_s`, a bounded
            # number of times; then it is a poison message and its task goes to the dead-letter set.
            try:
                failures = await self.services.queue.count_failure(message.message_id)
            except (RedisError, OSError):  # Redis itself is away: the message simply stays pending
                log.error("step failed and Redis is unreachable", case_id=message.case_id, matter=message.matter)
                return
            log.error("step failed", case_id=message.case_id, matter=message.matter, kind=message.kind,
                      failures=failures, error=f"{type(exc).__name__}: {str(exc)[:200]}")
            if failures >= MAX_STEP_FAILURES:
                await self.services.engine.give_up(message, exc)
                await self.services.queue.ack(message.message_id)
        finally:
            self.running.discard(message.message_id)
