"""The keyspace laid out for Redis Cluster (gateway/store/keys.py), and the gateway on a real 3-master cluster: each
case with its idempotency record in one slot, every shard consumed, the assertion spent once across slots, and the
cluster client waiting for a connection instead of failing."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.orchestration.intake import request_id_in_shard
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.connection import cluster_url, connect, resolve_redis_url
from gateway.store.queue import TaskQueue
from tests.support.cluster import LocalCluster
from tests.support.harness import PLATFORM, flush, medical_case, start_gateway


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_a_case_its_idempotency_record_and_its_request_ids_share_one_slot() -> None:
    for n in range(200):
        app_id, key = "platform", f"key-{n}"
        shard = keys.idempotency_shard(app_id, key)
        case_id = keys.new_id_in_shard(shard)
        request_id = request_id_in_shard(shard)
        assert len(case_id) == 32 and len(request_id) == 32 and request_id.startswith("GW")
        case_slot = slot(keys.case(case_id))
        assert {slot(k) for k in (keys.idempotency(app_id, key), keys.task(case_id, "m"), keys.audit(case_id),
                                  keys.request_index(request_id), keys.task_stream(shard), keys.outbox_stream(shard),
                                  keys.delayed(shard), keys.dlq(shard), keys.open_cases(shard))} == {case_slot}


def test_the_shards_spread_evenly_over_an_even_split_of_the_slots() -> None:
    masters = 3
    per_master = Counter(slot(keys.shard_prefix(shard)) * masters // 16384 for shard in keys.all_shards())
    assert sorted(per_master.values()) == [5, 5, 6]
    assert len({slot(keys.shard_prefix(shard)) for shard in keys.all_shards()}) == keys.shard_count()


def test_gateway_redis_cluster_names_any_node_as_one_url(tmp_path: Path) -> None:
    settings = Settings(redis_cluster=True, redis_url="redis://:pw@10.0.0.5:7001/0", var_dir=tmp_path)
    assert resolve_redis_url(settings) == ("redis+cluster://:pw@10.0.0.5:7001", None)
    assert cluster_url("rediss://10.0.0.5:7001") == "rediss+cluster://10.0.0.5:7001"


async def test_a_worker_takes_entries_from_every_shard_on_the_cluster(redis_cluster: LocalCluster) -> None:
    flush(redis_cluster.url)
    redis = connect(redis_cluster.url, Settings())
    queue = TaskQueue(redis, "worker-a")
    await queue.ensure_group()
    case_ids = [keys.new_id_in_shard(shard) for shard in keys.all_shards()]
    for case_id in case_ids:
        await queue.enqueue(case_id, "employee_medical_enrolment")
    await queue.enqueue(case_ids[3], "employee_medical_enrolment", delay_s=0.01)
    await asyncio.sleep(0.05)
    assert await queue.promote_due() == 1
    taken = []
    for _ in range(4):  # 17 entries on 16 shards, 5 a read: each read starts at the shard after the last one read
        taken += await queue.read(count=5, block_ms=50)
    assert sorted(m.case_id for m in taken) == sorted([*case_ids, case_ids[3]])
    assert await queue.pending_count() == len(taken)
    for message in taken:
        await queue.ack(message.message_id)
    assert await queue.pending_count() == 0
    await redis.aclose()


async def test_the_cluster_client_waits_for_a_connection_then_answers_busy(redis_cluster: LocalCluster) -> None:
    redis = connect(redis_cluster.url, Settings(redis_max_connections=2, redis_pool_timeout_s=0.3))
    # Forty commands at once on two connections a node: they wait their turn, none fails.
    assert await asyncio.gather(*(redis.set(f"gw:test:{n}", n) for n in range(40))) == [True] * 40
    blocked = [asyncio.create_task(redis.blpop(["gw:test:never"], timeout=1)) for _ in range(2)]
    await asyncio.sleep(0.1)
    with pytest.raises(RedisConnectionError):  # the API answers this with 503 service.busy
        await redis.get("gw:test:0")
    await asyncio.gather(*blocked)
    assert await redis.get("gw:test:0") == "0"
    await redis.aclose()


def test_on_the_cluster_an_assertion_creates_one_case_and_a_retry_answers_it(redis_cluster: LocalCluster,
                                                                            tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, redis_cluster.url)
    try:
        body = medical_case()
        person = body["applicant"]
        assert isinstance(person, dict)
        token = gw.identity.assertion(person["id_number"], person["name"])
        key = uuid.uuid4().hex
        first = gw.submit(body, key=key, assertion=token)
        assert first.status_code == 202, first.text
        assert keys.shard_of(first.json()["id"]) == keys.idempotency_shard(PLATFORM[0], key)
        retry = gw.submit(body, key=key, assertion=token)
        assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
        replay = gw.submit(body, assertion=token)  # another application with the spent assertion
        assert replay.status_code == 401
        assert [e["code"] for e in replay.json()["errors"]] == ["applicant.assertion.replayed"]
        assert len(list(gw.redis().scan_iter("gw:{*}:c:*:case"))) == 1
        assert gw.wait_terminal(first.json()["id"])["tasks"][0]["status"] == "completed"
    finally:
        gw.stop()


def test_settings_that_cannot_work_on_a_cluster_are_refused_with_the_reason() -> None:
    assert Settings(redis_cluster=True, redis_url="redis://n:7000", redis_wait_replicas=1).redis_problems() == [
        "GATEWAY_REDIS_WAIT_REPLICAS works with one primary and its replicas, not with a Redis Cluster: leave it 0 "
        "there"]
    assert Settings(redis_shards=0).redis_problems() == ["GATEWAY_REDIS_SHARDS (0) must be 1..16384 (Cluster slots)"]
    assert Settings(redis_cluster=True, redis_url="redis://n:7000").redis_problems() == []
