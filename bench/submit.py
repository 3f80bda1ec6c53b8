"""Submits per second: signed, valid one-matter online cases against a gateway started as its own process.

    .venv/bin/python -m bench.submit [--quick] [--layouts api up healthz] [--processes 1 2] [--redis-url URL]
                                     [--cases N] [--seconds S] [--tree PATH]

Each case is a Guangxi employee medical enrolment, online, with a fresh ES256 applicant assertion: the requests
(body, Idempotency-Key, assertion, nonce, HMAC) are all built before a phase starts, and sent by a raw asyncio
HTTP/1.1 client over keep-alive connections, so the client costs little beside the server.

Phases, per layout:
  closed-64, closed-256   that many connections, each sending its next request when the answer came (--cases in all)
  open-500/1000/2000      requests sent at that rate for --seconds whatever the answers; latency is measured from
                          each request's scheduled send time (a slow answer delays nothing, so queueing is counted)

Layouts, each started as a subprocess on a free port, in the same run:
  api       `gateway api` (with `--processes N` for each --processes value when the command has that option)
  up        `gateway up`: API, worker, outbox and the mock departments (the worker processes what is accepted)
  healthz   a bare FastAPI `GET /healthz` under uvicorn's defaults: what this machine's HTTP stack does with no work

Answers are counted by status: 202 accepted, 429/503 shed, anything else (and a reset or time-out) an error.
Beside the rates, the server's CPU (user + system of its process tree, from /proc) per answer: on a shared machine
the rates follow whatever else runs, the CPU per answer much less.
The database named by --redis-url is flushed before each layout: never point it at one holding data.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import MACHINE_REDIS, REPO_ROOT, flush, redis_reachable, summary, write_results
from gateway.security.signing import sign_caller_request
from tests.support.harness import IdentityService, applicant

APP_ID, SECRET = "bench-platform", "bench-platform-secret"
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
CLOSED = (64, 256)
OPEN_RATES = (500, 1000, 2000)
ANSWER_TIMEOUT_S = 30.0

healthz_app = FastAPI()  # the bare-stack reference: `uvicorn bench.submit:healthz_app`


@healthz_app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "alive"}


# ------------------------------------------------------------------------------------------------- requests


def medical_case(index: int) -> dict[str, Any]:
    """Distinct adults of working age (sequence ending in 3: an ordinary applicant of the mock population)."""
    birth = (dt.date(1970, 1, 1) + dt.timedelta(days=index % 9000)).strftime("%Y%m%d")
    person = applicant(birth=birth, sequence=3 + 10 * (index // 9000 % 90))
    return {"profile": "guangxi", "channel": "online", "matters": ["employee_medical_enrolment"],
            "delivery": "online", "applicant": person, "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}


def submit_request(index: int, identity: IdentityService, run: str) -> bytes:
    body = json.dumps(medical_case(index), ensure_ascii=False, separators=(",", ":")).encode()
    person = json.loads(body)["applicant"]
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex
    signature = sign_caller_request(SECRET, "POST", "/v1/cases", timestamp, nonce, body)
    head = (f"POST /v1/cases HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-App-Id: {APP_ID}\r\nX-Timestamp: {timestamp}\r\nX-Nonce: {nonce}\r\n"
            f"X-Signature: {signature}\r\nIdempotency-Key: {run}-{index}\r\n"
            f"X-Applicant-Assertion: {identity.assertion(person['id_number'], person['name'])}\r\n\r\n")
    return head.encode() + body


HEALTHZ_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# --------------------------------------------------------------------------------------------------- client


class Connection:
    """One keep-alive HTTP/1.1 connection: a request out, its status back (the body is read and dropped)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Phase:
    name: str
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    server_cpu_s: float = 0.0

    def record(self, status: int | str, latency_s: float) -> None:
        self.statuses[str(status)] += 1
        self.latencies.append(latency_s)

    def figures(self, success: int) -> dict[str, Any]:
        ok = self.statuses[str(success)]
        shed = self.statuses["429"] + self.statuses["503"]
        return {"phase": self.name, "answered_per_s": round(sum(self.statuses.values()) / self.elapsed_s, 1),
                "accepted_per_s": round(ok / self.elapsed_s, 1), "accepted": ok, "shed": shed,
                "errors": sum(self.statuses.values()) - ok - shed, "statuses": dict(self.statuses),
                "latency_ms": summary(self.latencies, 1e3), "seconds": round(self.elapsed_s, 2),
                "server_cpu_ms_per_answer": round(self.server_cpu_s * 1e3 / max(1, sum(self.statuses.values())), 3),
                "server_cores_busy": round(self.server_cpu_s / self.elapsed_s, 2)}


async def timed_send(connection: Connection, request: bytes, phase: Phase, since: float) -> None:
    try:
        status: int | str = await asyncio.wait_for(connection.send(request), ANSWER_TIMEOUT_S)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
        connection.close()
        status = type(exc).__name__
    phase.record(status, time.perf_counter() - since)


async def closed_loop(port: int, requests: list[bytes], in_flight: int, phase: Phase, advance: Any) -> None:
    pending = iter(requests)

    async def sender() -> None:
        connection = Connection(port)
        for request in pending:  # one shared iterator: each request is sent once, by whichever sender is free
            await timed_send(connection, request, phase, time.perf_counter())
            advance()
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(in_flight)))
    phase.elapsed_s = time.perf_counter() - started


async def open_loop(port: int, requests: list[bytes], rate: int, phase: Phase, advance: Any) -> None:
    """Request i is due at start + i/rate; it waits for a free connection if none is (counted in its latency)."""
    idle: list[Connection] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(request: bytes, due: float) -> None:
        connection = idle.pop() if idle else Connection(port)
        await timed_send(connection, request, phase, due)
        idle.append(connection)
        advance()

    started = time.perf_counter()
    for i, request in enumerate(requests):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(request, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    phase.elapsed_s = time.perf_counter() - started
    for connection in idle:
        connection.close()


# -------------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its living descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        process = pending.pop()
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for thread in os.scandir(f"/proc/{process}/task"):
                pending += [int(c) for c in Path(f"{thread.path}/children").read_text().split()]
        except OSError:  # it ended meanwhile
            continue
    return total


def server_env(tree: Path) -> dict[str, str]:
    """The environment a server runs in: its code from `tree` (this checkout, or another one for a before/after)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}


def has_processes_option(tree: Path) -> bool:
    """`gateway api --processes N` exists since the gateway runs several API processes (not in older checkouts)."""
    shown = subprocess.run([sys.executable, "-m", "gateway", "api", "--help"], capture_output=True, text=True,
                           cwd=tree, env={**server_env(tree), "COLUMNS": "200"})
    return "--processes" in shown.stdout


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(HEALTHZ_REQUEST)
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no /healthz on port {port} within {timeout_s} s")


@contextmanager
def server(layout: str, processes: int, folder: Path, identity: IdentityService, redis_url: str,
           log: Path, tree: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {**(os.environ if layout == "healthz" else server_env(tree)),
           "GATEWAY_REDIS_URL": redis_url, "GATEWAY_API_PORT": str(port),
           "GATEWAY_CALLERS_FILE": str(folder / "callers.json"), "GATEWAY_VAR_DIR": str(folder / f"var-{layout}"),
           "GATEWAY_IDENTITY_JWKS_FILE": str(identity.jwks_path), "GATEWAY_IDENTITY_ISSUER": identity.issuer,
           "GATEWAY_LOG_LEVEL": "WARNING"}
    if layout == "healthz":
        command = [sys.executable, "-m", "uvicorn", "bench.submit:healthz_app", "--port", str(port),
                   "--log-level", "warning"]
    else:
        flush(redis_url)
        command = [sys.executable, "-m", "gateway", layout, "--port", str(port)]
        if processes > 1:
            command += ["--processes", str(processes)]
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT if layout == "healthz" else tree, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, process)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------------------------ run


def phases(cases: int, seconds: float) -> list[tuple[str, str, int, int]]:
    """(name, kind, in flight or rate, requests)."""
    return ([(f"closed-{n}", "closed", n, cases) for n in CLOSED]
            + [(f"open-{rate}/s", "open", rate, int(rate * seconds)) for rate in OPEN_RATES])


async def run_layout(port: int, pid: int, layout: str, plan: list[tuple[str, str, int, int]], identity: IdentityService,
                     progress: Progress) -> list[dict[str, Any]]:
    results = []
    run = uuid.uuid4().hex[:8]
    for name, kind, amount, count in plan:
        if layout == "healthz":
            requests = [HEALTHZ_REQUEST] * count
        else:  # built just before the phase: the signatures' timestamps stay inside the gateway's window
            requests = [submit_request(i, identity, f"{run}-{name}") for i in range(count)]
        bar = progress.add_task(f"{layout} {name}", total=count)

        def advance(bar: Any = bar) -> None:
            progress.advance(bar)

        phase = Phase(name)
        cpu_before = tree_cpu_s(pid)
        if kind == "closed":
            await closed_loop(port, requests, amount, phase, advance)
        else:
            await open_loop(port, requests, amount, phase, advance)
        phase.server_cpu_s = tree_cpu_s(pid) - cpu_before
        results.append(phase.figures(200 if layout == "healthz" else 202))
    return results


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'layout':<16} {'phase':<12} {'ok/s':>8} {'answers/s':>10} {'ok':>7} {'shed':>6} {'errors':>6} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'cpu ms/ans':>10} {'cores':>5}")
    for row in rows:
        latency = row["latency_ms"]
        print(f"{row['layout']:<16} {row['phase']:<12} {row['accepted_per_s']:>8,.0f} {row['answered_per_s']:>10,.0f} "
              f"{row['accepted']:>7} {row['shed']:>6} {row['errors']:>6} {latency.get('p50', 0):>8} "
              f"{latency.get('p99', 0):>8} {row['server_cpu_ms_per_answer']:>10} {row['server_cores_busy']:>5}")
        other = {k: v for k, v in row["statuses"].items() if k not in ("200", "202", "429", "503")}
        if other:
            print(f"{'':<16} other answers: {other}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few hundred requests per phase (the suite's smoke)")
    parser.add_argument("--layouts", nargs="+", default=["api", "up", "healthz"], choices=["api", "up", "healthz"])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                        help="API processes for the api layout, when `gateway api --processes` exists (default 1 2)")
    parser.add_argument("--cases", type=int, default=None, help="requests per closed-loop phase (5000; quick 300)")
    parser.add_argument("--seconds", type=float, default=None, help="length of each open-loop phase (5; quick 0.3)")
    parser.add_argument("--redis-url", default=MACHINE_REDIS, help=f"FLUSHED before each layout ({MACHINE_REDIS})")
    parser.add_argument("--tree", type=Path, default=REPO_ROOT,
                        help="the checkout whose gateway to measure (default this one; another for a before/after)")
    args = parser.parse_args()
    cases = args.cases or (300 if args.quick else 5000)
    seconds = args.seconds or (0.3 if args.quick else 5.0)
    if not redis_reachable(args.redis_url):
        sys.exit(f"no Redis at {args.redis_url}")
    processes = args.processes if has_processes_option(args.tree) else [1]
    plan = phases(cases, seconds)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gw-bench-submit-") as name:
        folder = Path(name)
        (folder / "callers.json").write_text(json.dumps([{"app_id": APP_ID, "secret": SECRET, "name": "bench"}]))
        identity = IdentityService(folder)
        log = folder / "servers.log"
        runs = [(layout, n) for layout in args.layouts for n in (processes if layout == "api" else [1])]
        try:
            with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), transient=True) as progress:
                for layout, n in runs:
                    with server(layout, n, folder, identity, args.redis_url, log, args.tree) as (port, pid):
                        label = f"{layout} x{n}" if layout == "api" else layout
                        for row in asyncio.run(run_layout(port, pid, layout, plan, identity, progress)):
                            rows.append({"layout": label, **row})
        except BaseException:
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
    print_table(rows)
    write_results("submit-quick" if args.quick else "submit" if args.tree == REPO_ROOT else "submit-tree",
                  {"cases_per_closed_phase": cases, "open_phase_seconds": seconds, "quick": args.quick,
                   "redis_url": args.redis_url, "tree": str(args.tree), "rows": rows})


if __name__ == "__main__":
    main()
