"""What `WAIT 1` on case creation costs: a primary, one replica and three Sentinels from the machine's redis-server.

    .venv/bin/python -m bench.wait_cost [--count 1000] [--cases 300] [--concurrency 1 16] [--api-concurrency 8]

Two levels, each with WAIT off (GATEWAY_REDIS_WAIT_REPLICAS=0) and on (=1):
  store  CaseStore.create through Sentinel, `concurrency` coroutines on one pool (the script, then WAIT, one pipeline)
  api    signed POST /v1/cases of 1-matter window cases through a whole gateway (tests.support.harness.start_gateway,
         API + worker + mocks in this process), `api-concurrency` in flight
Figures: ops/s and p50/p99 ms. Everything on 127.0.0.1: the replica acknowledges within one loopback round trip, so
this is the floor of WAIT's cost; across machines add the network round trip to the replica.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from bench import summary, write_results
from bench.store import create_one, run
from gateway.client import AsyncGatewayClient
from gateway.security.audit import AuditSigner
from gateway.security.pii import PiiCipher
from gateway.settings import Settings
from gateway.store.cases import CaseStore
from gateway.store.connection import connect
from tests.support.harness import OPERATOR, WINDOW, applicant, start_gateway
from tests.support.sentinel import SentinelCluster

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def row(label: str, count: int, elapsed: float, samples: list[float]) -> dict[str, Any]:
    latency = summary(samples, 1e3, 3)
    figures = {"ops": count, "ops_per_s": round(count / elapsed, 1), "latency_ms": latency}
    print(f"  {label:<34}{figures['ops_per_s']:>9.0f}{latency['p50']:>9.3f}{latency['p99']:>9.3f}")
    return figures


async def store_level(url: str, wait: int, count: int, concurrency: int) -> dict[str, Any]:
    redis = connect(url, Settings())
    store = CaseStore(redis, PiiCipher(os.urandom(32)), AuditSigner(os.urandom(32), "sha256"), wait_replicas=wait,
                      wait_timeout_ms=1000)
    try:
        await create_one(store, uuid.uuid4().hex, f"warmup-{uuid.uuid4().hex}")
        ids = [uuid.uuid4().hex for _ in range(count)]
        elapsed, samples = await run([partial(create_one, store, c, f"k-{c}") for c in ids], concurrency)
    finally:
        await redis.aclose()
    return row(f"store, WAIT {'on ' if wait else 'off'}, concurrency {concurrency}", count, elapsed, samples)


async def submit_all(base_url: str, cases: int, concurrency: int) -> tuple[float, list[float], int]:
    client = AsyncGatewayClient(base_url, *WINDOW, operator_id=OPERATOR)
    work = iter(range(cases))
    samples: list[float] = []
    refused = 0

    async def lane() -> None:
        nonlocal refused
        for i in work:
            body = {"profile": "guangxi", "channel": "window", "delivery": "window",
                    "applicant": applicant(birth=f"19{70 + i // 336}{1 + i // 28 % 12:02d}{1 + i % 28:02d}"),
                    "matters": ["employee_medical_enrolment"],
                    "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}
            t0 = time.perf_counter()
            response = await client.submit_case(body)
            samples.append(time.perf_counter() - t0)
            refused += response.status_code != 202

    started = time.perf_counter()
    try:
        await asyncio.gather(*(lane() for _ in range(concurrency)))
    finally:
        await client.aclose()
    return time.perf_counter() - started, samples, refused


def api_level(folder: Path, url: str, wait: int, cases: int, concurrency: int) -> dict[str, Any]:
    gw = start_gateway(folder, url, redis_wait_replicas=wait, redis_wait_timeout_ms=1000)
    try:
        elapsed, samples, refused = asyncio.run(submit_all(gw.base_url, cases, concurrency))
    finally:
        gw.stop()
    figures = row(f"api, WAIT {'on ' if wait else 'off'}, {concurrency} in flight", cases, elapsed, samples)
    figures["not_202"] = refused
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="CaseStore.create calls per store run")
    parser.add_argument("--cases", type=int, default=300, help="POST /v1/cases per API run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--api-concurrency", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, Any] = {"store": {}, "api": {}}
    with tempfile.TemporaryDirectory(prefix="gw-bench-wait-") as tmp:
        folder = Path(tmp)
        (folder / "redis").mkdir()
        cluster = SentinelCluster(folder / "redis")
        try:
            cluster.start()
            print("WAIT 1 on case creation: primary + 1 replica + 3 Sentinels on loopback\n")
            print(f"  {'run':<34}{'ops/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
            for concurrency in args.concurrency:
                for wait in (0, 1):
                    results["store"][f"wait_{wait}_concurrency_{concurrency}"] = asyncio.run(
                        store_level(cluster.url, wait, args.count, concurrency))
            # Off, on, off, on: a machine shared with other work drifts; interleaving shows how much.
            for round_ in (1, 2):
                for wait in (0, 1):
                    run_folder = folder / f"api-{round_}-{wait}"
                    run_folder.mkdir()
                    results["api"][f"wait_{wait}_round_{round_}"] = api_level(run_folder, cluster.url, wait,
                                                                              args.cases, args.api_concurrency)
        finally:
            cluster.stop()
    write_results("wait_cost", results)


if __name__ == "__main__":
    main()
