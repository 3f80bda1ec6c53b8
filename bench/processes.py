"""Processes: the API's /healthz latency while the worker is busy (under `gateway up`), and signed submits/s with
1 and 2 `gateway api` processes on one port.

    .venv/bin/python -m bench.processes                      # both parts, this tree
    .venv/bin/python -m bench.processes --quick              # small counts (the suite's smoke size)
    .venv/bin/python -m bench.processes --part healthz --tree /path/to/older/checkout   # another tree's `gateway up`

`--tree` runs `gateway up` from another checkout (PYTHONPATH), e.g. one from before `gateway up` ran its worker in a
separate process, for the side-by-side figure. The load generator is a raw asyncio HTTP/1.1 client with requests
signed beforehand, so its own cost per request stays small; it still shares the machine's cores with the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import REPO_ROOT, flush, summary, write_results
from gateway.client import _case_headers, mint_demo_assertion, signed_headers
from gateway.security.applicant_identity import write_demo_identity
from gateway.security.callers import write_demo_callers
from mocks.serving import free_port
from tests.support.harness import applicant
from tests.support.processes import children_of

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def medical_case(index: int) -> dict[str, Any]:
    """A one-matter online Guangxi case; a different ordinary applicant (last digit 0-6) for each index."""
    month, day, seq = 1 + index // 2800 % 12, 1 + index // 100 % 28, index % 100
    person = applicant(birth=f"1990{month:02d}{day:02d}", sequence=(seq // 7) * 10 + seq % 7)
    return {"profile": "guangxi", "channel": "online", "applicant": person, "delivery": "online",
            "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}


def signed_submits(count: int, caller: tuple[str, str], key: Path, offset: int = 0) -> list[bytes]:
    """Whole HTTP/1.1 requests, signed and each with its own applicant assertion, ready to write."""
    requests = []
    for index in range(offset, offset + count):
        case = medical_case(index)
        body = json.dumps(case, ensure_ascii=False).encode()
        headers = signed_headers(*caller, "POST", "/v1/cases", body)
        headers |= _case_headers(uuid.uuid4().hex, mint_demo_assertion(key, case["applicant"]["id_number"],
                                                                         case["applicant"]["name"]))
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        requests.append(f"POST /v1/cases HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n{head}\r\n".encode() + body)
    return requests


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One request on a kept-alive connection; its status (the body is read and dropped)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return int(head.split(b" ", 2)[1])


async def closed_loop(port: int, requests: list[bytes], in_flight: int) -> dict[str, Any]:
    """`in_flight` connections, each sending the next request as soon as its previous one is answered."""
    pending = iter(requests)
    statuses: dict[int, int] = {}
    errors: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in pending:
                status = await exchange(reader, writer, request)
                statuses[status] = statuses.get(status, 0) + 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(repr(exc))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    return {"requests": len(requests), "in_flight": in_flight, "seconds": round(elapsed, 2),
            "submits_per_s": round(statuses.get(202, 0) / elapsed, 1), "statuses": statuses, "errors": errors[:5]}


async def probe_latency(port: int, seconds: float) -> list[float]:
    """GET /healthz one after another on one connection for `seconds`: each answer's latency."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    latencies = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
    finally:
        writer.close()
    return latencies


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise SystemExit(f"exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"not ready: {log.read_text()[-2000:]}")
        time.sleep(0.3)


def cpu_seconds(pids: set[int]) -> float:
    """User + system CPU time these processes have used so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def started(command: list[str], env: dict[str, str], folder: Path, port: int,
            tree: Path = REPO_ROOT) -> Iterator[subprocess.Popen[bytes]]:
    """The command run from `tree` (`python -m` puts the working folder first on the path)."""
    log = folder / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_ready(port, process, log)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_", "PROMETHEUS_"))}
    return env | {"PYTHONUNBUFFERED": "1", **extra}


def healthz_under_worker_load(tree: Path, cases: int, seconds: float) -> dict[str, Any]:
    """`gateway up` from `tree`: /healthz latency idle, then while its worker carries `cases` accepted cases."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        folder = Path(tmp)
        env = clean_env(GATEWAY_VAR_DIR=str(folder / "var"), PYTHONPATH=str(tree))
        with started([sys.executable, "-m", "gateway", "up", "--port", str(port)], env, folder, port, tree):
            printed = (folder / "gateway.log").read_text()
            found = re.search(r"demo caller: app_id=(\S+) secret=(\S+)", printed)
            assert found, printed
            key = folder / "var" / "identity" / "demo-idp-key.pem"
            requests = signed_submits(cases, (found.group(1), found.group(2)), key)
            idle = asyncio.run(probe_latency(port, 3))
            load = asyncio.run(closed_loop(port, requests, 16))
            busy = asyncio.run(probe_latency(port, seconds))  # the worker now carries what was accepted
    return {"tree": str(tree), "cases": cases, "submit": load, "healthz_idle_ms": summary(idle, 1e3),
            "healthz_worker_busy_ms": summary(busy, 1e3)}


def submits_per_process_count(processes: int, redis_url: str, count: int, in_flight: int) -> dict[str, Any]:
    """`gateway api --processes N` alone (no worker) on `redis_url`: a closed loop of signed submits."""
    port = free_port()
    flush(redis_url)
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        folder = Path(tmp)
        callers = folder / "callers.json"
        caller = write_demo_callers(callers)
        jwks, key = write_demo_identity(folder / "identity", "demo-idp")
        env = clean_env(GATEWAY_VAR_DIR=str(folder / "var"), GATEWAY_REDIS_URL=redis_url,
                        GATEWAY_CALLERS_FILE=str(callers), GATEWAY_IDENTITY_JWKS_FILE=str(jwks),
                        GATEWAY_IDENTITY_ISSUER="demo-idp", GATEWAY_LOG_LEVEL="WARNING", PYTHONPATH=str(REPO_ROOT))
        command = [sys.executable, "-m", "gateway", "api", "--port", str(port), "--processes", str(processes)]
        with started(command, env, folder, port) as supervisor:
            warmup = signed_submits(min(200, count), (caller.app_id, caller.secret), key, offset=count)
            asyncio.run(closed_loop(port, warmup, in_flight))
            requests = signed_submits(count, (caller.app_id, caller.secret), key)
            api = children_of(supervisor.pid) if processes > 1 else {supervisor.pid}
            cpu_before, client_before = cpu_seconds(api), time.process_time()
            result = asyncio.run(closed_loop(port, requests, in_flight))
            cpu_ms_per_submit = (cpu_seconds(api) - cpu_before) * 1e3 / count
            client_ms_per_submit = (time.process_time() - client_before) * 1e3 / count
    flush(redis_url)
    return {"processes": processes, **result, "api_cpu_ms_per_submit": round(cpu_ms_per_submit, 2),
            "client_cpu_ms_per_submit": round(client_ms_per_submit, 2), "loadavg_1m": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["healthz", "submits"], action="append")
    parser.add_argument("--tree", type=Path, action="append", help="checkout(s) whose `gateway up` to measure")
    parser.add_argument("--cases", type=int, default=300, help="cases handed to the worker (healthz part)")
    parser.add_argument("--seconds", type=float, default=15, help="/healthz probing while the worker is busy")
    parser.add_argument("--submits", type=int, default=3000, help="submits per process count")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="API process counts to compare")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="flushed! (submits part)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.seconds, args.submits = 40, 3, 300
    parts = args.part or ["healthz", "submits"]
    results: dict[str, Any] = {}
    if "healthz" in parts:
        results["healthz"] = []
        for tree in args.tree or [REPO_ROOT]:
            row = healthz_under_worker_load(tree.resolve(), args.cases, args.seconds)
            results["healthz"].append(row)
            idle, busy = row["healthz_idle_ms"], row["healthz_worker_busy_ms"]
            print(f"gateway up ({tree}): /healthz idle p50 {idle['p50']} ms p99 {idle['p99']} ms; worker busy "
                  f"p50 {busy['p50']} ms p99 {busy['p99']} ms max {busy['max']} ms "
                  f"({busy['n']} probes; {row['submit']['statuses']} submitted)", flush=True)
    if "submits" in parts:
        results["submits"] = []
        for processes in args.processes:
            row = submits_per_process_count(processes, args.redis_url, args.submits, args.in_flight)
            results["submits"].append(row)
            print(f"gateway api --processes {processes}: {row['submits_per_s']} submits/s at {args.in_flight} in "
                  f"flight, CPU per submit {row['api_cpu_ms_per_submit']} ms API, {row['client_cpu_ms_per_submit']} ms "
                  f"client; load {row['loadavg_1m']:.1f} ({row['statuses']}, errors {row['errors']})", flush=True)
    write_results("processes_quick" if args.quick else "processes", results)


if __name__ == "__main__":
    main()
