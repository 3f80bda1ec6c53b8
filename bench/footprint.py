"""Footprint: bytes of Redis per finished case, and the RSS of the API and worker processes with many open cases.

    .venv/bin/python -m bench.footprint [--finished 200] [--open 10000] [--redis-url URL] [--quick]

Finished cases (in-process gateway with the mock departments, as bench.end_to_end; the simulated applicant pays
through the SMS link at once): Guangxi 1-matter (medical) and 3-matter (pension, medical, contribution declaration)
online cases, each with its applicant assertion and e-license retrieval, run to their end and their events
delivered. Then, per case:
  - resident: MEMORY USAGE (exact, SAMPLES 0) of the keys the case keeps until retention removes it (its hash,
    tasks, audit chain, request-id indexes: gateway.store.retention.case_keys);
  - expiring: the case's share of keys that expire on their own (idempotency key, spent assertion and nonce, outbox
    delivery markers, H5 links, callback digests);
  - shared: its share of the rest (streams, consumer groups, indexes, breakers);
  - used_memory: the growth of Redis' INFO used_memory over the cases, divided by their number (includes the
    keyspace's own overhead); and after `retention.sweep` with a zero retention, what is left.

Open cases (separate `gateway api` and `gateway worker` processes, as production runs them): window cases whose
department is unreachable, so every case stays open (queued, retried, breaker open); VmRSS of each process at start,
after the submits, and again after the worker has held them a while.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import MACHINE_REDIS, redis_for, redis_version, write_results
from gateway.bootstrap import audit_signer, pii_cipher
from gateway.client import AsyncGatewayClient
from gateway.security.audit import AuditChain
from gateway.settings import Settings
from gateway.store import keys, retention
from gateway.store.connection import connect
from mocks.serving import free_port
from tests.support.harness import OPERATOR, PLATFORM, TERMINAL, WINDOW, IdentityService, applicant, start_gateway

GATEWAY = str(Path(sys.executable).parent / "gateway")
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
SCENARIOS = {
    "guangxi 1 matter online": ["employee_medical_enrolment"],
    "guangxi 3 matters online": ["employee_pension_enrolment", "employee_medical_enrolment",
                                 "contribution_declaration"],
}


def progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r  {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="" if done < total else "\n",
          flush=True)


def body(matters: list[str], index: int, channel: str = "online") -> dict[str, Any]:
    """Distinct ordinary applicants, all of working age: the mocks remember enrolments by ID number."""
    birth = (dt.date(1975, 1, 1) + dt.timedelta(days=index % 9000)).strftime("%Y%m%d")
    today = dt.date.today()
    sections: dict[str, Any] = {"employee_medical_enrolment": MEDICAL_SECTION}
    if "contribution_declaration" in matters:
        sections["contribution_declaration"] = {"rows": [{
            "fee_type": "pension", "levy_item": "flexible_pension", "period_start": today.replace(day=1).isoformat(),
            "period_end": today.isoformat(), "contribution_base": 5000}]}
    person = applicant(birth=birth, sequence=123 + 10 * (index // 9000))
    return {"profile": "guangxi", "channel": channel, "applicant": person,
            "matters": matters, "sections": {m: s for m, s in sections.items() if m in matters}, "delivery": channel}


def memory_of(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def wait_quiet(client: redis.Redis, case_ids: list[str], matters: list[str], timeout_s: float) -> None:
    """Every case finished and every stream entry handled (acknowledged entries are deleted)."""
    deadline = time.monotonic() + timeout_s
    finished: set[str] = set()
    while time.monotonic() < deadline:
        before = len(finished)
        for case_id in case_ids:
            if case_id not in finished and all(
                    client.hget(keys.task(case_id, m), "status") in TERMINAL for m in matters):
                finished.add(case_id)
        if len(finished) > before:
            progress("finished", len(finished), len(case_ids))
        if len(finished) == len(case_ids) and not any(
                client.xlen(keys.outbox_stream(s)) or client.xlen(keys.task_stream(s)) for s in keys.all_shards()):
            return
        time.sleep(0.2)
    raise SystemExit(f"cases not finished in {timeout_s:.0f} s: {len(finished)}/{len(case_ids)}")


def finished_footprint(url: str, name: str, matters: list[str], count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gw-footprint-") as folder:
        gw = start_gateway(Path(folder), url, applicant_delay="0", retention_days=0)
        client = gw.redis()
        try:
            base = int(client.info("memory")["used_memory"])
            case_ids = []
            for i in range(count):
                response = gw.submit(body(matters, i))
                if response.status_code != 202:
                    raise SystemExit(f"submit refused: {response.status_code} {response.text[:300]}")
                case_ids.append(response.json()["id"])
                progress("submitted", i + 1, count)
            wait_quiet(client, case_ids, matters, 120 + count)
            time.sleep(1)  # the last deliveries' markers
            used = int(client.info("memory")["used_memory"]) - base
            found = asyncio.run(finished_cases(gw.redis_url, gw.settings, case_ids))
            owned = {c.case_id: [keys.case(c.case_id), keys.audit(c.case_id), *retention.case_keys(c)]
                     for c in found}
            case_keys = {k for ks in owned.values() for k in ks}
            by_kind: dict[str, int] = {}
            for c in found:  # the resident keys by what they are
                for kind, named in (("case hash", [keys.case(c.case_id)]), ("audit chain", [keys.audit(c.case_id)]),
                                    ("task hashes", [keys.task(c.case_id, m) for m in c.matters]),
                                    ("request-id index", [keys.request_index(r) for r in c.request_ids])):
                    by_kind[f"resident {kind}"] = (by_kind.get(f"resident {kind}", 0)
                                                   + sum(memory_of(client, k) for k in named))
            resident = sum(memory_of(client, k) for k in case_keys)
            expiring = shared = 0
            for key in client.scan_iter(count=1000):
                if key in case_keys:
                    continue
                size = memory_of(client, key)
                lasting = "expiring" if client.ttl(key) > 0 else "shared"
                kind = f"{lasting} {key.split(':')[1] if ':' in key else key}"
                by_kind[kind] = by_kind.get(kind, 0) + size
                if lasting == "expiring":
                    expiring += size
                else:
                    shared += size
            audit_entries = sum(client.llen(keys.audit(c)) for c in case_ids) / count
            before_sweep = int(client.info("memory")["used_memory"])
            removed, intact = asyncio.run(sweep_all(gw.redis_url, gw.settings))
            after_sweep = int(client.info("memory")["used_memory"])
            return {
                "scenario": name, "cases": count, "finished": len(found),
                "audit_entries_per_case": round(audit_entries, 1),
                "resident_bytes_per_case": round(resident / count),
                "expiring_bytes_per_case": round(expiring / count),
                "shared_bytes_per_case": round(shared / count),
                "used_memory_per_case": round(used / count),
                "removed_by_retention": removed, "exports_intact": intact,
                "used_memory_freed_per_case": round((before_sweep - after_sweep) / count),
                "case_keys_left_after_retention": sum(client.exists(*ks) for ks in owned.values())
                + sum(1 for s in keys.all_shards() for member in client.zrange(keys.delayed(s), 0, -1)
                      if json.loads(member)["case_id"] in owned),
                "bytes_by_kind_per_case": {k: round(v / count) for k, v in sorted(by_kind.items())},
            }
        finally:
            client.close()
            gw.stop()


async def finished_cases(url: str, settings: Settings, case_ids: list[str]) -> list[retention.FinishedCase]:
    redis_client = connect(url, settings)
    try:
        return [c for case_id in case_ids for c in [await retention.finished_case(redis_client, case_id)] if c]
    finally:
        await redis_client.aclose()


async def sweep_all(url: str, settings: Settings) -> tuple[int, int]:
    """Retention with no delay: every finished case exported and removed; (removed, exports that verify)."""
    redis_client = connect(url, settings)
    try:
        chain = AuditChain(redis_client, audit_signer(settings), pii_cipher(settings).for_purpose("events"))
        report = await retention.sweep(redis_client, chain, settings.audit_export_dir, 0.0)
        intact = sum(chain.verify_export(settings.audit_export_dir / f"{case_id}.json").intact
                     for case_id in report.removed)
        return len(report.removed), intact
    finally:
        await redis_client.aclose()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_cases_rss(url: str, count: int, concurrency: int, hold_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gw-footprint-rss-") as folder_name:
        folder = Path(folder_name)
        redis.Redis.from_url(url).flushdb()
        callers = folder / "callers.json"
        callers.write_text(json.dumps([{"app_id": WINDOW[0], "secret": WINDOW[1], "kind": "window"},
                                       {"app_id": PLATFORM[0], "secret": PLATFORM[1]}]))
        identity = IdentityService(folder)
        port = free_port()
        env = dict(os.environ, GATEWAY_REDIS_URL=url, GATEWAY_VAR_DIR=str(folder / "var"),
                   GATEWAY_CALLERS_FILE=str(callers), GATEWAY_IDENTITY_JWKS_FILE=str(identity.jwks_path),
                   GATEWAY_IDENTITY_ISSUER=identity.issuer, GATEWAY_RETENTION_DAYS="0",
                   # Nobody answers there: every case stays open, its task retried behind an open breaker.
                   GATEWAY_ADAPTERS__MEDICAL__BASE_URL=f"http://127.0.0.1:{free_port()}",
                   GATEWAY_LOG_LEVEL="WARNING")
        logs = [open(folder / f"{n}.log", "wb") for n in ("api", "worker")]  # noqa: SIM115
        api = subprocess.Popen([GATEWAY, "api", "--port", str(port)], env=env, stdout=logs[0],
                               stderr=subprocess.STDOUT)
        worker = subprocess.Popen([GATEWAY, "worker", "--name", "footprint"], env=env, stdout=logs[1],
                                  stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if api.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the API did not start: {(folder / 'api.log').read_text()[-2000:]}")
                time.sleep(0.2)
            time.sleep(2)
            start = {"api": rss_kib(api.pid), "worker": rss_kib(worker.pid)}
            statuses = asyncio.run(submit_window_cases(base, count, concurrency))
            submitted = {"api": rss_kib(api.pid), "worker": rss_kib(worker.pid)}
            time.sleep(hold_s)
            held = {"api": rss_kib(api.pid), "worker": rss_kib(worker.pid)}
            client = redis.Redis.from_url(url, decode_responses=True)
            open_now = sum(client.zcard(keys.open_cases(s)) for s in keys.all_shards())
            used = int(client.info("memory")["used_memory"])
            client.close()
            return {"cases": count, "accepted": statuses.get(202, 0), "statuses": statuses,
                    "open_cases": open_now, "redis_used_memory_mib": round(used / 2**20, 1),
                    "rss_mib": {moment: {p: round(kib / 1024, 1) for p, kib in values.items()}
                                for moment, values in (("at start", start), ("after submits", submitted),
                                                       (f"after {hold_s:g} s open", held))}}
        finally:
            for process in (api, worker):
                process.terminate()
            for process in (api, worker):
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
            for log in logs:
                log.close()


async def submit_window_cases(base: str, count: int, concurrency: int) -> dict[int, int]:
    client = AsyncGatewayClient(base, *WINDOW, operator_id=OPERATOR)
    statuses: dict[int, int] = {}
    work = iter(range(count))
    done = 0

    async def lane() -> None:
        nonlocal done
        for i in work:
            response = await client.submit_case(body(["employee_medical_enrolment"], i, "window"))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            done += 1
            if done % 100 == 0 or done == count:
                progress("submitted", done, count)

    try:
        await asyncio.gather(*(lane() for _ in range(concurrency)))
    finally:
        await client.aclose()
    return statuses


def show(finished: list[dict[str, Any]], opened: dict[str, Any]) -> None:
    print("\nRedis bytes per finished case (events delivered, before retention)")
    print(f"| {'scenario':<26} | cases | audit entries | resident | expiring | shared | used_memory "
          "| after retention |")
    print(f"| {'-' * 26} | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in finished:
        print(f"| {r['scenario']:<26} | {r['cases']} | {r['audit_entries_per_case']} | "
              f"{r['resident_bytes_per_case']:,} | {r['expiring_bytes_per_case']:,} | {r['shared_bytes_per_case']:,} "
              f"| {r['used_memory_per_case']:,} | {r['removed_by_retention']} removed "
              f"({r['exports_intact']} exports verify), "
              f"{r['case_keys_left_after_retention']} case keys left |")
    for r in finished:
        print(f"  {r['scenario']}: " + ", ".join(f"{k} {v:,}" for k, v in r["bytes_by_kind_per_case"].items()))
    print(f"\nRSS (MiB) with {opened['open_cases']:,} open cases ({opened['accepted']:,} accepted, "
          f"Redis used_memory {opened['redis_used_memory_mib']} MiB)")
    print("| moment | API | worker |\n| --- | ---: | ---: |")
    for moment, values in opened["rss_mib"].items():
        print(f"| {moment} | {values['api']} | {values['worker']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=200, help="finished cases per scenario (default 200)")
    parser.add_argument("--open", type=int, default=10_000, help="open cases for the RSS figures (default 10000)")
    parser.add_argument("--concurrency", type=int, default=32, help="submits in flight for the open cases")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the worker holds the open cases")
    parser.add_argument("--redis-url", default=None,
                        help=f"a Redis to use (its database is FLUSHED), e.g. {MACHINE_REDIS}; default: embedded")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 finished, 50 open cases")
    args = parser.parse_args()
    if args.quick:
        args.finished, args.open, args.hold = 3, 50, 2.0
    with redis_for(args.redis_url) as url:
        version = redis_version(url)
        print(f"footprint on Redis {version} ({'embedded' if args.redis_url is None else url})")
        finished = []
        for name, matters in SCENARIOS.items():
            print(f"\n{name}: {args.finished} cases")
            finished.append(finished_footprint(url, name, matters, args.finished))
        print(f"\nopen cases: {args.open} window cases, department unreachable")
        opened = open_cases_rss(url, args.open, args.concurrency, args.hold)
    show(finished, opened)
    write_results("footprint", {"redis": args.redis_url or "embedded", "redis_version": version,
                                "finished": finished, "open": opened})


if __name__ == "__main__":
    main()
