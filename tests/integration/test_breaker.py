"""The circuit breaker on real Redis: shared by every process, and a single probe when half-open (issue 10, item 4)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.resilience.breaker import CircuitBreakers
from gateway.settings import Settings
from gateway.store.connection import connect

pytestmark = pytest.mark.cluster  # breakers on the Redis Cluster fixture too


async def _breakers(redis_url: str, open_s: float = 0.3) -> tuple[CircuitBreakers, CircuitBreakers, str]:
    adapter = f"dept-{uuid.uuid4().hex[:8]}"
    # Two instances on two connections: two worker processes looking at one department.
    return (CircuitBreakers(connect(redis_url, Settings()), 2, open_s),
            CircuitBreakers(connect(redis_url, Settings()), 2, open_s), adapter)


async def _open(breakers: CircuitBreakers, adapter: str) -> None:
    await breakers.record_failure(adapter)
    assert await breakers.record_failure(adapter)


async def test_an_open_breaker_stops_every_process_then_admits_exactly_one_probe(redis_url):
    one, two, adapter = await _breakers(redis_url)
    assert await one.admit(adapter, 5.0, "w1") == 0
    await _open(one, adapter)
    assert await two.admit(adapter, 5.0, "w2") > 0  # the other process sees it open
    await asyncio.sleep(0.35)
    waits = await asyncio.gather(*(b.admit(adapter, 5.0, f"w{i}") for i, b in enumerate([one, two] * 10)))
    assert sum(1 for w in waits if w == 0) == 1, waits
    assert all(w > 0 for w in waits if w != 0)
    await two.record_success(adapter)  # the probe succeeded: closed for everybody
    assert await one.admit(adapter, 5.0, "w1") == 0 and await two.admit(adapter, 5.0, "w2") == 0
    await one.redis.aclose()
    await two.redis.aclose()


async def test_a_failed_probe_reopens_at_once_and_a_lost_probe_frees_its_lock(redis_url):
    one, two, adapter = await _breakers(redis_url)
    await _open(one, adapter)
    await asyncio.sleep(0.35)
    assert await one.admit(adapter, 5.0, "w1") == 0
    assert await one.record_failure(adapter)  # one failure of the probe is enough
    assert await two.admit(adapter, 5.0, "w2") > 0.2
    await asyncio.sleep(0.35)
    assert await two.admit(adapter, 0.2, "w2") == 0  # this probe's worker dies without reporting
    assert await one.admit(adapter, 5.0, "w1") > 0
    await asyncio.sleep(0.3)
    assert await one.admit(adapter, 5.0, "w1") == 0  # its lock expired: the next caller probes
    await one.redis.aclose()
    await two.redis.aclose()
