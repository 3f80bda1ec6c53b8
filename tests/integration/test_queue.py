"""The task stream on real Redis (6.2 embedded and the machine's 7.x): reclaiming a dead worker's messages, and a
live worker's heartbeat keeping its slow step from being taken over."""

from __future__ import annotations

import asyncio

import pytest

from gateway.settings import Settings
from gateway.store.connection import connect
from gateway.store.queue import TaskQueue
from tests.support.harness import flush

pytestmark = pytest.mark.cluster  # the queue on the Redis Cluster fixture too


async def two_workers(redis_url: str) -> tuple[TaskQueue, TaskQueue]:
    flush(redis_url)
    redis = connect(redis_url, Settings())
    a, b = TaskQueue(redis, "worker-a"), TaskQueue(redis, "worker-b")
    await a.ensure_group()
    await a.enqueue("case-1", "employee_medical_enrolment")
    return a, b


async def test_a_dead_workers_message_is_reclaimed_by_another(redis_url):
    a, b = await two_workers(redis_url)
    taken = await a.read(count=10, block_ms=100)
    assert [m.case_id for m in taken] == ["case-1"]
    await asyncio.sleep(0.6)  # worker-a died holding it
    reclaimed = await b.reclaim(min_idle_ms=500)
    assert [m.message_id for m in reclaimed] == [taken[0].message_id]
    await b.ack(reclaimed[0].message_id)
    assert await b.pending_count() == 0
    await a.redis.aclose()


async def test_a_live_workers_heartbeat_keeps_its_message(redis_url):
    a, b = await two_workers(redis_url)
    taken = await a.read(count=10, block_ms=100)
    for _ in range(3):  # a step running three times longer than the redelivery window
        await asyncio.sleep(0.3)
        await a.keep_alive([m.message_id for m in taken])
    assert await b.reclaim(min_idle_ms=500) == []
    await a.redis.aclose()
