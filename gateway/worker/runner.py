"""A worker: consumes the task stream in its consumer group (gateway/store/consumer.py) and runs each step."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import structlog
from opentelemetry.trace import SpanKind

from gateway.bootstrap import Services
from gateway.observability.metrics import (
    DEAD_LETTER_TASKS,
    DELAYED_SIZE,
    OUTBOX_BACKLOG,
    OUTBOX_PARKED,
    OVERDUE_CASES,
    QUEUE_PENDING,
    WORKER_HEARTBEAT,
)
from gateway.observability.tracing import span
from gateway.security.audit import AuditChain
from gateway.store import keys, retention
from gateway.store.consumer import ConsumerLoop, Entry
from gateway.store.queue import depths, message_of

log = structlog.get_logger("gateway.worker")
MAX_STEP_FAILURES = 5  # a step that crashes this often is a bug or bad data, not a passing fault


class Worker:
    def __init__(self, services: Services, concurrency: int | None = None) -> None:
        self.services = services
        self.loop = ConsumerLoop(
            consumer=services.queue.stream, handle=self._handle, give_up=self._give_up,
            order_key=lambda entry: entry[0],  # steps are independent: the state machine orders a task's moves
            concurrency=concurrency or services.settings.worker_concurrency, max_failures=MAX_STEP_FAILURES,
            each_round=services.queue.promote_due, housekeeping=self._housekeeping)
        self.retention: asyncio.Task[None] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker started", consumer=self.services.queue.consumer, concurrency=self.loop.concurrency)
        await self.loop.run(stop)
        if self.retention is not None:  # stopped between an export and its removal, the next sweep redoes both
            self.retention.cancel()
            await asyncio.gather(self.retention, return_exceptions=True)
        log.info("worker stopped", consumer=self.services.queue.consumer)

    async def _handle(self, entry: Entry) -> bool:
        message = message_of(entry)
        if message is None:
            return True
        # The step that queued this message is its parent; a delayed message (no traceparent) continues its case.
        parent = message.traceparent or await self.services.store.traceparent(message.case_id)
        stream = keys.task_stream(keys.shard_of(message.case_id))
        attributes = {"messaging.system": "redis", "messaging.operation.type": "process",
                      "messaging.destination.name": stream, "messaging.consumer.group.name": keys.TASK_GROUP,
                      "messaging.message.id": message.message_id, "gateway.case_id": message.case_id,
                      "gateway.matter": message.matter, "gateway.step": message.kind}
        with (structlog.contextvars.bound_contextvars(case_id=message.case_id, matter=message.matter or None),
              span(f"{message.kind} {stream}", parent=parent, kind=SpanKind.CONSUMER,
                   attributes=attributes)):
            await self.services.engine.process(message)
        return True

    async def _give_up(self, entry: Entry, exc: Exception) -> None:
        """A step that keeps crashing: its task is dead-lettered so ops see it, instead of looping for ever."""
        message = message_of(entry)
        if message is not None:
            await self.services.engine.give_up(message, exc)

    async def _housekeeping(self) -> None:
        await self._heartbeat()
        queued = await depths(self.services.redis)
        QUEUE_PENDING.set(queued.tasks_pending)
        OVERDUE_CASES.set(queued.overdue_cases)
        DEAD_LETTER_TASKS.set(queued.dead_letters)
        DELAYED_SIZE.set(queued.delayed)
        OUTBOX_BACKLOG.set(queued.outbox_pending)
        OUTBOX_PARKED.set(queued.outbox_parked)
        await self._maybe_sweep()

    async def _maybe_sweep(self) -> None:
        """Start a retention sweep when none ran in the last interval: the expiring RETENTION_SWEEP key is both the
        lease (one worker at a time) and the schedule. It runs beside the loop, never holding up its steps."""
        settings = self.services.settings
        if settings.retention_days <= 0 or (self.retention is not None and not self.retention.done()):
            return
        if await self.services.redis.set(keys.RETENTION_SWEEP, self.services.queue.consumer, nx=True,
                                         ex=max(1, int(settings.retention_sweep_interval_s))):
            self.retention = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        services = self.services
        try:
            await retention.sweep(services.redis, AuditChain(services.redis, services.store.audit,
                                                             services.store.events),
                                  services.settings.audit_export_dir, services.settings.retention_days * 86400)
        except Exception:  # the next interval tries again; the worker goes on
            log.exception("retention sweep failed")

    async def _heartbeat(self) -> None:
        """`gw:workers:<consumer>` lives for one reclaim idle time (four rounds of housekeeping): a worker whose loop
        stops, stuck or dead, drops out of `gateway status`, and its heartbeat gauge stops moving."""
        settings = self.services.settings
        now = time.time()
        beat = {"at": now, "host": socket.gethostname(), "pid": os.getpid(), "in_hand": len(self.loop.in_hand),
                "concurrency": self.loop.concurrency}
        await self.services.redis.set(keys.worker_heartbeat(self.services.queue.consumer), json.dumps(beat),
                                      ex=max(2, int(settings.redeliver_after_s)))
        WORKER_HEARTBEAT.set(now)
