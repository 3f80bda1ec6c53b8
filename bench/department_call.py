"""What one department call costs the gateway: the adapter path beside a bare httpx request and an nginx hop.

    .venv/bin/python -m bench.department_call [--calls 2000] [--concurrency 1 16] [--redis-url URL] [--quick]

The mock departments run in their own process (`gateway mocks`, as `gateway up` runs them), so this process's CPU
time (`time.process_time`, every thread) is the gateway's side of each call alone, and the mocks' and nginx's CPU is
read from their processes (psutil). Each path repeats one request the mock has already answered once, so the
department does the same work on every path:

  medical (engine)        the worker's `Engine.call_department` around it: breaker admission and outcome (Redis),
                          retry policy, concurrency slot, metrics, status-table lookup
  medical (adapter)       MedicalAdapter.submit: envelope, JSON, HMAC signature, POST, reply -> NativeOutcome
  hrss SOAP (adapter)     HrssAdapter.submit: zeep envelope from the packaged WSDL, POST, SOAP reply parsed
  e-license x4 (adapter)  ELicenseAdapter.fetch_identity_documents: 2 queries then 2 downloads, concurrently
  medical (bare httpx)    the medical adapter's exact request bytes POSTed on a plain pooled httpx client
  medical (nginx hop)     the same bytes through nginx (a temporary nginx.conf on a free port, keep-alive upstream)

The adapters are built as a worker builds them (`build_services`, no callback keys configured, as under
`gateway up`); the breakers live in the given Redis (default: an embedded one in a temporary folder; nothing else is
written, nothing flushed).

Per path: calls/s, latency p50/p99 (ms), and CPU µs per call of the gateway, the mocks and nginx. The e-license
row counts one retrieval (4 HTTP calls) as one call. Figures are noisy on a shared 2-core machine: compare rows of
one run, never runs of different load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.progress import Progress

from bench import REPO_ROOT, redis_for, summary, write_results
from gateway.bootstrap import build_services
from gateway.sdk import AdapterSettings, DepartmentRequest
from gateway.settings import Settings
from mocks.serving import free_port
from tests.support.adapters import department_request
from tests.support.harness import applicant

NGINX = "/usr/sbin/nginx"
MOCKED = ("medical", "hrss", "e_license")
SIGNING_SECRET = "bench-signing-secret"  # the adapters sign as under `gateway up`; the mocks do not check it
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not listen on {port} in time")
        time.sleep(0.05)


@contextmanager
def mock_departments(folder: Path) -> Iterator[tuple[dict[str, int], subprocess.Popen[bytes]]]:
    """`gateway mocks` for the three departments in a process of its own."""
    ports = {name: free_port() for name in MOCKED}
    env = {**os.environ, "GATEWAY_MOCK_PORTS": json.dumps(ports), "GATEWAY_VAR_DIR": str(folder / "var"),
           "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "gateway", "mocks", *(arg for name in MOCKED for arg in ("--only", name))]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        for port in ports.values():
            wait_for_port(port, process, "gateway mocks")
        yield ports, process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    upstream department {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://department;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@contextmanager
def nginx_hop(upstream: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Debian's nginx proxying a free loopback port to `upstream`, with keep-alive to it as a deployment would."""
    with tempfile.TemporaryDirectory(prefix="gw-bench-nginx-") as folder:
        port = free_port()
        conf = Path(folder) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(folder=folder, upstream=upstream, port=port))
        process = subprocess.Popen([NGINX, "-p", folder, "-c", str(conf), "-e", f"{folder}/error.log"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(port, process, "nginx")
            yield port, process
        finally:
            process.send_signal(signal.SIGQUIT)  # graceful: the workers finish and exit with the master
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def cpu_s(process: subprocess.Popen[bytes] | None) -> float:
    """User + system CPU seconds of a process and its children (nginx's workers)."""
    if process is None:
        return 0.0
    parent = psutil.Process(process.pid)
    total = 0.0
    for p in [parent, *parent.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


async def measure(label: str, call: Callable[[], Awaitable[Any]], count: int, concurrency: int,
                  mocks: subprocess.Popen[bytes], nginx: subprocess.Popen[bytes] | None,
                  progress: Progress) -> dict[str, Any]:
    for _ in range(min(50, count)):  # warm: connections open, caches filled
        await call()
    task = progress.add_task(f"{label} ×{concurrency}", total=count)
    latencies: list[float] = []
    remaining = iter(range(count))

    async def lane() -> None:
        for _ in remaining:  # the lanes share one iterator: `count` calls in all
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)
            progress.advance(task)

    mocks_before, nginx_before = cpu_s(mocks), cpu_s(nginx)
    cpu_before, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    gateway_cpu = time.process_time() - cpu_before
    mocks_cpu, nginx_cpu = cpu_s(mocks) - mocks_before, cpu_s(nginx) - nginx_before
    progress.remove_task(task)
    latency = summary(latencies, 1e3, 3)
    return {"path": label, "concurrency": concurrency, "calls": count, "calls_per_s": round(count / wall, 1),
            "p50_ms": latency["p50"], "p99_ms": latency["p99"],
            "gateway_cpu_us_per_call": round(gateway_cpu / count * 1e6, 1),
            "mocks_cpu_us_per_call": round(mocks_cpu / count * 1e6, 1),
            "nginx_cpu_us_per_call": round(nginx_cpu / count * 1e6, 1) if nginx is not None else None}


def settings_for(ports: dict[str, int], folder: Path) -> Settings:
    return Settings(var_dir=folder / "var", mock_ports=ports, profiles_dir=REPO_ROOT / "profiles", adapters={
        name: AdapterSettings(base_url=f"http://127.0.0.1:{port}", signing_secret=SIGNING_SECRET)
        for name, port in ports.items()})


def requests() -> dict[str, DepartmentRequest]:
    person = applicant(birth="19880808", sequence=123)
    fields = {k: person[k] for k in ("name", "phone")}
    return {
        "medical": department_request("employee_medical_enrolment", id_number=person["id_number"],
                                      section=MEDICAL_SECTION, **fields),
        "hrss": department_request("employment_registration", id_number=person["id_number"],
                                   section={"employment_type": "flexible", "employment_start_date": "2026-03-01"},
                                   **fields),
    }


async def run(counts: int, concurrencies: list[int], folder: Path, redis_url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with mock_departments(folder) as (ports, mocks):
        services = await build_services(settings_for(ports, folder), redis_url, consumer="bench-calls", api=False)
        manager, engine = services.adapters, services.engine
        sent: list[httpx.Request] = []
        medical_client = manager.adapters["medical"].ctx.http
        medical_client.event_hooks["request"].append(lambda request: _remember(sent, request))
        bare = httpx.AsyncClient(timeout=5.0, limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        try:
            asks = requests()
            medical, hrss, e_license = (manager.get(name) for name in MOCKED)
            person = asks["medical"].applicant
            consent = {"jti": "bench-assertion", "issuer": "bench-idp", "acr": "L3"}
            await medical.submit(asks["medical"])  # registers the case once; later calls are its repeats
            medical_client.event_hooks["request"].clear()
            body, headers = sent[0].content, {"content-type": "application/json"}
            medical_url = str(sent[0].url)
            with nginx_hop(ports["medical"]) as (nginx_port, nginx):
                hop_url = medical_url.replace(f":{ports['medical']}/", f":{nginx_port}/")
                paths: list[tuple[str, Callable[[], Awaitable[Any]], subprocess.Popen[bytes] | None]] = [
                    ("medical (engine)", lambda: engine.call_department(
                        medical, "employee_medical_enrolment", lambda: medical.submit(asks["medical"]), None), None),
                    ("medical (adapter)", lambda: medical.submit(asks["medical"]), None),
                    ("hrss SOAP (adapter)", lambda: hrss.submit(asks["hrss"]), None),
                    ("e-license x4 (adapter)", lambda: e_license.fetch_identity_documents(  # type: ignore[attr-defined]
                        person["name"], person["id_number"], consent), None),
                    ("medical (bare httpx)", lambda: _post(bare, medical_url, body, headers), None),
                    ("medical (nginx hop)", lambda: _post(bare, hop_url, body, headers), nginx),
                ]
                with Progress(transient=True) as progress:
                    for concurrency in concurrencies:
                        for label, call, hop in paths:
                            rows.append(await measure(label, call, counts, concurrency, mocks, hop, progress))
        finally:
            await bare.aclose()
            await services.close()
    return rows


async def _remember(sent: list[httpx.Request], request: httpx.Request) -> None:
    sent.append(request)


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> None:
    response = await client.post(url, content=body, headers=headers)
    response.raise_for_status()
    response.json()  # as the adapter reads it


def show(rows: list[dict[str, Any]]) -> None:
    head = (f"{'path':24} {'in flight':>9} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'gateway µs':>11} "
            f"{'mocks µs':>9} {'nginx µs':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        nginx = "-" if r["nginx_cpu_us_per_call"] is None else f"{r['nginx_cpu_us_per_call']:.0f}"
        print(f"{r['path']:24} {r['concurrency']:>9} {r['calls_per_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} "
              f"{r['gateway_cpu_us_per_call']:>11.0f} {r['mocks_cpu_us_per_call']:>9.0f} {nginx:>9}")
    print("CPU µs per call: this process (the gateway's side), the mocks' process, nginx master + worker.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per path (default 2000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="calls in flight (default 1 16)")
    parser.add_argument("--quick", action="store_true", help="100 calls per path at 1 and 4 in flight (smoke)")
    parser.add_argument("--redis-url", default=None, help="where the breakers live (default: an embedded Redis)")
    args = parser.parse_args()
    if shutil.which(NGINX) is None:
        raise SystemExit(f"{NGINX} not found (Debian's nginx package)")
    calls, concurrencies = (100, [1, 4]) if args.quick else (args.calls, args.concurrency)
    print(f"department call: {calls} calls per path, in flight {concurrencies}; mocks in their own process")
    with tempfile.TemporaryDirectory(prefix="gw-bench-calls-") as folder, redis_for(args.redis_url) as url:
        rows = asyncio.run(run(calls, concurrencies, Path(folder), url))
    show(rows)
    write_results("department_call_quick" if args.quick else "department_call", {"rows": rows})


if __name__ == "__main__":
    main()
