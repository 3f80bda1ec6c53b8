"""Whole cases through a whole gateway: signed API, worker, outbox, real Redis, the real mock departments on loopback.

    .venv/bin/python -m bench.end_to_end [--cases 200] [--concurrency 8] [--jiujiang-cases 20] [--latency 0 100]
                                         [--scenario medical-window medical-online guangxi-online jiujiang]
                                         [--redis-url URL | --cluster] [--serial] [--quick]

The gateway is `tests.support.harness.start_gateway`: API, worker and outbox dispatcher in one event loop on one
thread, each mock department on its own uvicorn thread, all in THIS process (one GIL) with the load generator. Each
scenario gets a fresh gateway and fresh mocks (their stats and the population's enrolments start empty), and every
mock is given the latency through POST /_mock/faults before the first case.

Scenarios:
  medical-window  1-matter Guangxi employee medical enrolment from the service-centre window (no e-license step)
  medical-online  the same online, with an applicant assertion: e-license retrieval first, then the department
  guangxi-online  3 Guangxi matters online (employee pension, employee medical, contribution declaration): the
                  e-license retrieval (4 calls), then hrss, medical and tax; the applicant pays at once
  jiujiang        all 5 Jiujiang matters online; the simulated applicant pays and deposits through the SMS links at
                  once (MOCK_APPLICANT_DELAY_S=0); complete when the 《就业创业证》 e-certificate is issued

Figures: submit latency (client round trip of POST /v1/cases), accepted -> completed (server timestamps: the case's
created_at to its last task's updated_at, and to the certificate's issued_at), cases/s sustained (cases / time from
the first submit to the last completion), department calls from each mock's /_mock/stats, CPU per thread and CPU
ms per case by part: the gateway (API + worker + outbox, `gateway up`'s one loop), the mocks, the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from bench import MACHINE_REDIS, redis_for, redis_version, summary, write_results
from gateway.client import AsyncGatewayClient
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.connection import connect
from tests.support.harness import OPERATOR, PLATFORM, TERMINAL, WINDOW, RunningGateway, applicant, start_gateway

MEDICAL = ["employee_medical_enrolment"]
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
JIUJIANG = ["employment_registration", "employee_pension_enrolment", "employee_medical_enrolment",
            "housing_fund_account", "contribution_declaration"]
GUANGXI = ["employee_pension_enrolment", "employee_medical_enrolment", "contribution_declaration"]
# Registrations each department must show per case (the mocks count a request id once, so a retry or a
# duplicate delivery shows up in `duplicates`, never here). e_license: the certificate (retrieval registers nothing).
EXPECTED = {
    "medical-window": {"medical": 1},
    "medical-online": {"medical": 1},
    "guangxi-online": {"hrss": 1, "medical": 1, "tax": 1},
    "jiujiang": {"hrss": 2, "medical": 1, "housing_fund": 1, "tax": 1, "e_license": 1},
}
WAIT_S = 150.0  # bound on waiting for one scenario's cases to finish


@dataclass
class Submitted:
    case_id: str | None
    status: int
    latency_s: float


def parse_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def bodies(scenario: str, count: int) -> list[dict[str, Any]]:
    """Distinct ordinary applicants (sequence ending in 3): the mocks remember enrolments by ID number."""
    start = dt.date(1985, 1, 1)
    result = []
    for i in range(count):
        birth = (start + dt.timedelta(days=i)).strftime("%Y%m%d")
        if scenario == "jiujiang":
            result.append({"profile": "jiujiang", "channel": "online", "matters": JIUJIANG, "delivery": "online",
                           "applicant": applicant(division="360402", birth=birth, sequence=123)})
        elif scenario == "guangxi-online":
            result.append({"profile": "guangxi", "channel": "online", "matters": GUANGXI, "delivery": "online",
                           "applicant": applicant(birth=birth, sequence=123)})
        else:
            channel = "window" if scenario == "medical-window" else "online"
            result.append({"profile": "guangxi", "channel": channel, "matters": MEDICAL, "delivery": channel,
                           "applicant": applicant(birth=birth, sequence=123),
                           "sections": {"employee_medical_enrolment": MEDICAL_SECTION}})
    return result


def filled_sections(gw: RunningGateway, profile: str, matters: list[str]) -> dict[str, Any]:
    """Filled from the published catalogue by the suite's own form filler (as the integration tests do)."""
    from tests.support import forms

    return forms.filled_sections(gw.client.profile(profile).json()["matters"], matters)


def matters_of(scenario: str) -> list[str]:
    return {"jiujiang": JIUJIANG, "guangxi-online": GUANGXI}.get(scenario, MEDICAL)


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every thread of this process, by native thread id (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    result: dict[int, float] = {}
    for entry in os.scandir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        result[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return result


def cpu_per_case(cpu: dict[str, float], finished: int) -> dict[str, float]:
    """CPU ms per finished case: the gateway's loop, the mock departments together, and the rest (the load
    generator, the platform's webhook receiver)."""
    parts = {"gateway": 0.0, "mocks": 0.0, "load + webhook": 0.0}
    for name, seconds in cpu.items():
        part = "gateway" if name.startswith("gateway") else "mocks" if name.startswith("mock ") else "load + webhook"
        parts[part] += seconds
    return {part: round(seconds / max(1, finished) * 1e3, 2) for part, seconds in parts.items()}


def cpu_by_part(gw: RunningGateway, before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    names = {gw.thread.native_id: "gateway (API + worker + outbox)", threading.main_thread().native_id:
             "load generator", gw.webhook.server.thread.native_id: "webhook receiver"}
    names |= {server.thread.native_id: f"mock {name}" for name, server in gw.mocks.items()}
    parts: dict[str, float] = {}
    for tid, seconds in after.items():
        part = names.get(tid, "other threads")
        parts[part] = parts.get(part, 0.0) + seconds - before.get(tid, 0.0)
    return {k: round(v, 2) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}


async def submit_all(gw: RunningGateway, scenario: str, cases: list[dict[str, Any]], assertions: list[str | None],
                     concurrency: int, serial: bool = False, sent: Callable[[], None] = lambda: None
                     ) -> list[Submitted]:
    app_id, secret = WINDOW if scenario == "medical-window" else PLATFORM
    client = AsyncGatewayClient(gw.base_url, app_id, secret,
                                operator_id=OPERATOR if scenario == "medical-window" else None)
    work = iter(zip(cases, assertions, strict=True))
    results: list[Submitted] = []

    async def lane() -> None:
        for body, assertion in work:  # the lanes share one iterator: each case is sent once
            t0 = time.perf_counter()
            response = await client.submit_case(body, assertion=assertion)
            latency = time.perf_counter() - t0
            case_id = response.json().get("id") if response.status_code == 202 else None
            if case_id is None:
                print(f"  ! {response.status_code}: {response.text[:300]}")
            results.append(Submitted(case_id, response.status_code, latency))
            sent()
            if serial and case_id:  # one case at a time, start to finish: latency without any queueing
                matters = matters_of(scenario)
                await wait_done(gw.redis_url, [case_id], matters, certified_by(gw, scenario), WAIT_S)

    try:
        await asyncio.gather(*(lane() for _ in range(concurrency)))
    finally:
        await client.aclose()
    return results


def certified_by(gw: RunningGateway, scenario: str) -> Callable[[], dict[str, float]] | None:
    """For a scenario that ends in a certificate: the cases whose `case.certificate_issued` event reached the
    platform, with the event's time (the department's issueTime has whole seconds, the event milliseconds; the
    case's own certificate field is sealed at rest)."""
    if scenario != "jiujiang":
        return None
    return lambda: {e["case_id"]: parse_ts(e["at"]) for e in list(gw.webhook.events)
                    if e.get("type") == "case.certificate_issued"}


async def wait_done(redis_url: str, case_ids: list[str], matters: list[str],
                    certified: Callable[[], dict[str, float]] | None, timeout_s: float,
                    finished: Callable[[int], None] = lambda count: None) -> dict[str, dict[str, Any]]:
    """Watch the cases in Redis (not through the API, so watching adds no HTTP load) until each is finished."""
    redis = connect(redis_url, Settings())  # a single Redis or a Cluster, as the gateway connects
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(done) < len(case_ids) and time.monotonic() < deadline:
            waiting = [c for c in case_ids if c not in done]
            async with redis.pipeline(transaction=False) as pipe:
                for case_id in waiting:
                    pipe.hget(keys.case(case_id), "created_at")
                    for matter in matters:
                        pipe.hmget(keys.task(case_id, matter), ["status", "updated_at"])
                replies = await pipe.execute()
            step = 1 + len(matters)
            issued = certified() if certified is not None else {}
            for i, case_id in enumerate(waiting):
                created_at, *tasks = replies[i * step:(i + 1) * step]
                statuses = [t[0] for t in tasks]
                if not all(s in TERMINAL for s in statuses):
                    continue
                completed = all(s == "completed" for s in statuses)
                if certified is not None and completed and case_id not in issued:
                    continue  # the certificate follows the last task
                done[case_id] = {"statuses": statuses, "created": parse_ts(created_at),
                                 "finished": max(parse_ts(t[1]) for t in tasks), "certified": issued.get(case_id)}
            finished(len(done))
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    return done


def run_scenario(scenario: str, redis_url: str, count: int, concurrency: int, latency_ms: int,
                 serial: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as folder:
        gw = start_gateway(Path(folder), redis_url, applicant_delay="0")
        try:
            return measure(gw, scenario, redis_url, count, 1 if serial else concurrency, latency_ms, serial)
        finally:
            gw.stop()


def measure(gw: RunningGateway, scenario: str, redis_url: str, count: int, concurrency: int,
            latency_ms: int, serial: bool) -> dict[str, Any]:
    for name in gw.mocks:
        gw.faults(name, latency_ms=latency_ms)
    cases = bodies(scenario, count)
    if scenario in ("jiujiang", "guangxi-online"):
        sections = filled_sections(gw, cases[0]["profile"], matters_of(scenario))
        for body in cases:
            body["sections"] = sections
    # Applicants' assertions are minted before the clock starts: the identity service is not the gateway.
    assertions = [None if scenario == "medical-window" else
                  gw.identity.assertion(b["applicant"]["id_number"], b["applicant"]["name"]) for b in cases]
    matters = matters_of(scenario)

    cpu_before = thread_cpu()
    process_before = time.process_time()
    started = time.time()
    with Progress(transient=True) as progress:
        sending = progress.add_task(f"{scenario} submitted", total=count)
        finishing = progress.add_task(f"{scenario} finished", total=count)
        submitted = asyncio.run(submit_all(gw, scenario, cases, assertions, concurrency, serial,
                                           sent=lambda: progress.advance(sending)))
        submit_wall = time.time() - started
        case_ids = [s.case_id for s in submitted if s.case_id]
        done = asyncio.run(wait_done(redis_url, case_ids, matters, certified_by(gw, scenario), WAIT_S,
                                     finished=lambda n: progress.update(finishing, completed=n)))
    wall = time.time() - started
    cpu = cpu_by_part(gw, cpu_before, thread_cpu())
    process_cpu = time.process_time() - process_before

    finished = [d["certified"] or d["finished"] for d in done.values()]
    outcomes: dict[str, int] = {}
    for d in done.values():
        outcome = "completed" if all(s == "completed" for s in d["statuses"]) else "/".join(sorted(set(d["statuses"])))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if len(done) < len(case_ids):
        outcomes["not finished in time"] = len(case_ids) - len(done)
    last = max(finished) if finished else time.time()
    stats = {name: {k: v for k, v in gw.stats(name).items() if k in ("received", "duplicates", "registrations")}
             for name in gw.mocks}
    expected = {dept: per_case * len(case_ids) for dept, per_case in EXPECTED[scenario].items()}
    mismatches = {dept: {"expected": n, "registrations": stats[dept]["registrations"]}
                  for dept, n in expected.items() if stats[dept]["registrations"] != n}
    return {
        "scenario": scenario, "cases": count, "concurrency": "serial" if serial else concurrency,
        "mock_latency_ms": latency_ms,
        "accepted": len(case_ids), "refused": {str(s.status): sum(1 for x in submitted if x.status == s.status)
                                               for s in submitted if s.case_id is None},
        "outcomes": outcomes,
        "submit_ms": summary([s.latency_s for s in submitted], 1e3, 1),
        "submit_cases_per_s": round(count / submit_wall, 1),
        "accepted_to_completed_ms": summary([d["finished"] - d["created"] for d in done.values()], 1e3, 0),
        "accepted_to_certificate_ms": summary([d["certified"] - d["created"] for d in done.values()
                                               if d["certified"] is not None], 1e3, 0),
        "sustained_cases_per_s": round(len(done) / max(1e-9, last - started), 2),
        "wall_s": round(wall, 2),
        "process_cpu_s": round(process_cpu, 2),
        "cpu_s_by_thread": cpu,
        "cpu_ms_per_case": cpu_per_case(cpu, len(done)),
        "department_calls": stats,
        "registrations_expected": expected,
        "registration_mismatches": mismatches,
    }


def show(result: dict[str, Any]) -> None:
    sub, a2c, cert = result["submit_ms"], result["accepted_to_completed_ms"], result["accepted_to_certificate_ms"]
    print(f"  accepted {result['accepted']}/{result['cases']}, outcomes {result['outcomes']}"
          + (f", refused {result['refused']}" if result["refused"] else ""))
    print(f"  submit ms        p50 {sub['p50']:>7} p95 {sub['p95']:>7} p99 {sub['p99']:>7} max {sub['max']:>7}"
          f"   ({result['submit_cases_per_s']} submits/s)")
    if a2c.get("n"):
        print(f"  accepted->done ms p50 {a2c['p50']:>6} p95 {a2c['p95']:>7} p99 {a2c['p99']:>7} max {a2c['max']:>7}")
    if cert.get("n"):
        print(f"  accepted->certificate ms p50 {cert['p50']} p95 {cert['p95']} max {cert['max']}")
    print(f"  sustained {result['sustained_cases_per_s']} cases/s; wall {result['wall_s']} s; "
          f"process CPU {result['process_cpu_s']} s")
    print(f"  CPU s by thread: {result['cpu_s_by_thread']}")
    print(f"  CPU ms per case: {result['cpu_ms_per_case']}")
    calls = ", ".join(f"{name} {s['received']}/{s['duplicates']}/{s['registrations']}"
                      for name, s in result["department_calls"].items())
    print(f"  department calls (received/duplicates/registrations): {calls}")
    if result["registration_mismatches"]:
        print(f"  !!! REGISTRATIONS DO NOT EQUAL CASES: {result['registration_mismatches']}")
    else:
        print(f"  registrations equal cases: {result['registrations_expected']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200,
                        help="medical and Guangxi 3-matter cases per scenario (default 200)")
    parser.add_argument("--jiujiang-cases", type=int, default=20, help="5-matter Jiujiang cases (default 20)")
    parser.add_argument("--concurrency", type=int, default=8, help="submits in flight (default 8)")
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 100], help="mock latency ms (default 0 100)")
    parser.add_argument("--serial", action="store_true",
                        help="one case at a time, each awaited to its end: the unloaded latency (no queueing)")
    parser.add_argument("--scenario", nargs="+", default=list(EXPECTED), choices=list(EXPECTED))
    parser.add_argument("--redis-url", default=None,
                        help=f"a Redis to use (its database is FLUSHED), e.g. {MACHINE_REDIS}; default: embedded")
    parser.add_argument("--cluster", action="store_true",
                        help="a local 3-master Redis Cluster (the machine's redis-server) instead")
    parser.add_argument("--quick", action="store_true",
                        help="smoke: 10 Guangxi 3-matter online cases, mock latency 0 (other scenario options ignored)")
    args = parser.parse_args()
    if args.quick:
        args.scenario, args.cases, args.latency = ["guangxi-online"], 10, [0]

    results: list[dict[str, Any]] = []
    with redis_for(args.redis_url, args.cluster) as url:
        version = redis_version(url)
        print(f"end to end on Redis {version} ({'embedded' if args.redis_url is None and not args.cluster else url}), "
              f"{'serial' if args.serial else f'concurrency {args.concurrency}'}")
        for latency in args.latency:
            for scenario in args.scenario:
                count = args.jiujiang_cases if scenario == "jiujiang" else args.cases
                print(f"\n{scenario}: {count} cases, mock latency {latency} ms")
                result = run_scenario(scenario, url, count, args.concurrency, latency, args.serial)
                show(result)
                results.append(result)
    table(results)
    name = "end_to_end_quick" if args.quick else "end_to_end_serial" if args.serial else "end_to_end"
    write_results(name, {"redis": "cluster" if args.cluster else args.redis_url or "embedded",
                         "redis_version": version, "results": results})


def table(results: list[dict[str, Any]]) -> None:
    head = (f"\n{'scenario':16} {'latency':>7} {'cases':>6} {'done':>5} {'cases/s':>8} {'gateway ms/case':>16} "
            f"{'mocks ms/case':>14} {'load ms/case':>13}")
    print(head)
    print("-" * len(head.strip()))
    for r in results:
        cpu = r["cpu_ms_per_case"]
        done = sum(n for outcome, n in r["outcomes"].items() if outcome != "not finished in time")
        print(f"{r['scenario']:16} {r['mock_latency_ms']:>7} {r['cases']:>6} {done:>5} "
              f"{r['sustained_cases_per_s']:>8} {cpu['gateway']:>16} {cpu['mocks']:>14} {cpu['load + webhook']:>13}")


if __name__ == "__main__":
    try:
        main()
    except httpx.HTTPError as exc:  # a mock or the gateway did not answer: say so plainly
        raise SystemExit(f"HTTP error: {exc!r}") from exc
