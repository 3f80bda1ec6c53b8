"""A soak with three ledgers: what the gateway believes, what each department registered, what the platform received.

    .venv/bin/python -m bench.soak --minutes 10 [--rate 1.0]      the full run (docs/operations.md has its figures)
    .venv/bin/python -m bench.soak --quick                         the suite's run: 25 s of load, at most 60 s to drain

Runs, as production does: two `gateway api` and two `gateway worker` processes on one dedicated redis-server (AOF,
fsync always, on a free port so it can be killed and restarted), the six mock departments (in this process, so their
fault draws can be counted) and a platform webhook receiver that refuses 30 % of deliveries.

Load: a steady rate of signed submits, two of three a one-matter Guangxi case from the service-centre window, one of
three a five-matter Jiujiang case online (applicant assertion, e-license retrieval, H5 payment and deposit acted on by
the SMS mock's simulated applicant, the 《就业创业证》 certificate). A submit that gets no answer or a 5xx is retried
with the same Idempotency-Key, against the other API, as a platform would.

Faults all along: every department and the SMS gateway answer errors, hang past the client time-out and answer
garbage at fixed rates; one department is down for 30 s (8 s quick); a worker is killed with SIGKILL every 20 s
(12 s quick) and restarted; one API is killed once and restarted; Redis is killed with SIGKILL once and restarted
from its AOF.

At the end (load stopped, everything given time to drain) it reconciles and exits 1 on any mismatch:
  gateway     every acknowledged case is in Redis and every task terminal; no case in Redis was left unacknowledged;
              no task non-terminal without a timer (delayed set) or a message (task stream)
  departments each department's registrations (the mocks count a request id once) = the tasks the gateway holds as
              answered there (completed or rejected; for the e-license bureau, certificates issued)
  platform    per case, the events received are seq 1..N with N the case's seq, each seq with one event id; a
              redelivery of the same event id is counted (the receiver de-duplicates by id) but is not a mismatch
The ledgers side by side, the faults injected and the figures go to stdout and bench/results/soak[-quick].json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from fastapi import FastAPI, Request, Response

import mocks.common
from bench import REPO_ROOT, write_results
from gateway.client import GatewayClient
from gateway.store import keys
from mocks.serving import MOCK_FACTORIES, RunningServer, create_mock, free_port, start_in_thread
from tests.support.forms import filled_sections
from tests.support.harness import OPERATOR, PLATFORM, TERMINAL, WINDOW, IdentityService, applicant

GATEWAY = str(Path(sys.executable).parent / "gateway")
DEPARTMENTS = ("medical", "hrss", "tax", "housing_fund", "e_license")
FAULTS = {"error_rate": 0.04, "timeout_rate": 0.02, "malformed_rate": 0.03}
OUTAGE_DEPARTMENT = "medical"
# Statuses only a department's answer to the submission can lead to: that department registered the request.
ANSWERED = {"accepted", "in_review", "awaiting_payment", "completed", "rejected", "unknown_native_status"}
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
JIUJIANG = ["employment_registration", "employee_pension_enrolment", "employee_medical_enrolment",
            "housing_fund_account", "contribution_declaration"]


@dataclass(frozen=True)
class Plan:
    load_s: float  # submits arrive during this long; the chaos happens inside it
    drain_s: float  # then at most this long for every case to end and every event to arrive
    rate: float  # cases per second
    worker_kill_every_s: float
    outage_s: float


QUICK = Plan(load_s=25, drain_s=60, rate=1.0, worker_kill_every_s=12, outage_s=8)


def full(minutes: float, rate: float) -> Plan:
    return Plan(load_s=minutes * 60, drain_s=240, rate=rate, worker_kill_every_s=20, outage_s=30)


# --------------------------------------------------------------------------------------------------- instruments


class FaultCounter:
    """Counts each fault the mocks draw: the mocks' own `decide_fault`, wrapped where each mock module calls it."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        original = mocks.common.decide_fault

        async def counted(state: mocks.common.MockState) -> mocks.common.FaultDecision:
            decision = await original(state)
            if decision.kind != "ok":
                self.counts[(state.name, decision.kind)] += 1
            return decision

        for target in MOCK_FACTORIES.values():
            module = sys.modules.get(target.partition(":")[0]) or __import__(target.partition(":")[0],
                                                                             fromlist=["_"])
            module.decide_fault = counted  # type: ignore[attr-defined]


class Platform:
    """The platform's webhook: refuses a share of deliveries, records every accepted one."""

    def __init__(self, refusal_rate: float) -> None:
        self.refusal_rate = refusal_rate
        self.events: list[dict[str, Any]] = []
        self.refused = 0
        app = FastAPI()

        @app.post("/events")
        async def receive(request: Request) -> Response:
            if random.random() < self.refusal_rate:
                self.refused += 1
                return Response(status_code=503)
            self.events.append(json.loads(await request.body()))
            return Response(status_code=204)

        self.server = start_in_thread(app)
        self.url = self.server.url + "/events"


class RedisServer:
    """A dedicated redis-server with AOF fsync'd on every write: killed and restarted, it loses nothing acknowledged."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary

    def start(self) -> None:
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class Processes:
    """`gateway api` and `gateway worker` processes, started, killed with SIGKILL and restarted by name."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.commands: dict[str, list[str]] = {}
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str] | None = None) -> None:
        self.commands[name] = command or self.commands[name]
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.running[name] = subprocess.Popen(self.commands[name], env=self.env, stdout=log,
                                              stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        self.running[name].send_signal(signal.SIGKILL)
        self.running[name].wait(10)

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


# -------------------------------------------------------------------------------------------------------- load


@dataclass
class Submission:
    key: str
    body: dict[str, Any]
    assertion: str | None
    answers: list[int] = field(default_factory=list)
    case_id: str | None = None


class Load:
    def __init__(self, api_urls: list[str], identity: IdentityService, jiujiang_sections: dict[str, Any]) -> None:
        self.clients = {"window": [GatewayClient(url, *WINDOW, operator_id=OPERATOR) for url in api_urls],
                        "platform": [GatewayClient(url, *PLATFORM) for url in api_urls]}
        self.identity = identity
        self.jiujiang_sections = jiujiang_sections
        self.submissions: list[Submission] = []
        self.threads: list[threading.Thread] = []

    def body(self, n: int) -> tuple[dict[str, Any], str | None]:
        birth = (dt.date(1980, 1, 1) + dt.timedelta(days=n)).strftime("%Y%m%d")
        if n % 3 == 2:
            person = applicant(division="360402", birth=birth, sequence=123)
            body = {"profile": "jiujiang", "channel": "online", "matters": JIUJIANG, "delivery": "online",
                    "applicant": person, "sections": self.jiujiang_sections}
            return body, self.identity.assertion(person["id_number"], person["name"], exp_s=900)
        return {"profile": "guangxi", "channel": "window", "delivery": "window",
                "applicant": applicant(birth=birth, sequence=123), "matters": ["employee_medical_enrolment"],
                "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}, None

    def submit(self, n: int) -> None:
        body, assertion = self.body(n)
        submission = Submission(key=uuid.uuid4().hex, body=body, assertion=assertion)
        self.submissions.append(submission)
        thread = threading.Thread(target=self._until_acknowledged, args=(submission, n), daemon=True)
        thread.start()
        self.threads.append(thread)

    def _until_acknowledged(self, submission: Submission, n: int) -> None:
        """A platform's retry: no answer or a 5xx is sent again with the same key, to the other API."""
        clients = self.clients["platform" if submission.assertion else "window"]
        deadline = time.monotonic() + 120
        attempt = 0
        while time.monotonic() < deadline:
            client = clients[(n + attempt) % len(clients)]
            attempt += 1
            try:
                response = client.submit_case(submission.body, idempotency_key=submission.key,
                                              assertion=submission.assertion)
            except httpx.HTTPError:
                submission.answers.append(0)
                time.sleep(0.5)
                continue
            submission.answers.append(response.status_code)
            if response.status_code in (200, 202):
                submission.case_id = response.json()["id"]
                return
            if response.status_code < 500:
                return  # refused for what it is: counted as a mismatch below (the load is valid)
            time.sleep(0.5)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(130)


# ------------------------------------------------------------------------------------------------- reconcile


def gateway_ledger(r: redis.Redis, certificates_of: Callable[[str], int] | None = None) -> dict[str, Any]:
    """Every case and task in Redis, and what keeps each non-terminal task going; with `certificates_of`, each
    certificate-issuing case's certificates as the API shows them (sealed in Redis)."""
    delayed = Counter()
    in_stream = Counter()
    for shard in keys.all_shards():
        for raw in r.zrange(keys.delayed(shard), 0, -1):
            message = json.loads(raw)
            delayed[(message["case_id"], message["matter"])] += 1
        for _, fields in r.xrange(keys.task_stream(shard)):
            in_stream[(fields["case_id"], fields["matter"])] += 1
    cases: dict[str, dict[str, Any]] = {}
    for case_key in r.scan_iter("gw:{*}:c:*:case", count=1000):
        raw = r.hgetall(case_key)
        matters = json.loads(raw.get("matters", "[]"))
        tasks = {m: r.hgetall(keys.task(raw["id"], m)) for m in matters}
        certificates = certificates_of(raw["id"]) if certificates_of and raw.get("profile") == "jiujiang" else 0
        cases[raw["id"]] = {"seq": int(raw.get("seq", 0)), "certificates": certificates, "tasks": tasks}
    return {"cases": cases, "delayed": delayed, "in_stream": in_stream}


def reconcile(load: Load, ledger: dict[str, Any], stats: dict[str, dict[str, Any]],
              events: list[dict[str, Any]]) -> dict[str, Any]:
    mismatches: list[str] = []
    cases = ledger["cases"]
    acknowledged = {s.case_id for s in load.submissions if s.case_id}
    unanswered = [s.answers for s in load.submissions if not s.case_id]
    mismatches += [f"submission never acknowledged: answers {a}" for a in unanswered]
    mismatches += [f"acknowledged case {c} not in Redis" for c in acknowledged - cases.keys()]
    mismatches += [f"case {c} in Redis but never acknowledged" for c in cases.keys() - acknowledged]
    statuses: Counter[str] = Counter()
    answered: Counter[str] = Counter()  # registrations each department should show
    for case_id, case in cases.items():
        answered["e_license"] += case["certificates"]
        for matter, task in case["tasks"].items():
            if not task:
                mismatches.append(f"case {case_id} without its task {matter}")
                continue
            statuses[task["status"]] += 1
            if task["status"] in ANSWERED:
                answered[task["adapter"]] += 1
            if task["status"] not in TERMINAL:
                held = ledger["delayed"][(case_id, matter)] + ledger["in_stream"][(case_id, matter)]
                why = "with a timer or message" if held else "WITHOUT a timer or a message"
                mismatches.append(f"task {case_id}:{matter} still {task['status']} {why} (native "
                                  f"{task.get('native_status')}, polls {task.get('polls')}, attempts "
                                  f"{task.get('attempts')}, updated {task.get('updated_at')})")
    departments = {}
    for name in DEPARTMENTS:
        registered = stats[name]["registrations"]
        departments[name] = {"gateway_answered": answered[name], "registered": registered,
                             "duplicates_answered_from_cache": stats[name]["duplicates"],
                             "calls": stats[name]["received"]}
        if registered != answered[name]:
            mismatches.append(f"{name}: registered {registered}, gateway holds {answered[name]} answered")
    by_case: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    deliveries: Counter[str] = Counter()
    for event in events:
        by_case[event["case_id"]][int(event["seq"])].add(event["event_id"])
        deliveries[event["event_id"]] += 1
    redelivered = sum(n - 1 for n in deliveries.values())
    for case_id, case in cases.items():
        received = by_case.get(case_id, {})
        expected = set(range(1, case["seq"] + 1))
        if set(received) != expected:
            missing, extra = sorted(expected - set(received)), sorted(set(received) - expected)
            mismatches.append(f"case {case_id} events: missing seq {missing[:10]}, unexpected seq {extra[:10]}")
        mismatches += [f"case {case_id} seq {seq}: {len(ids)} different events" for seq, ids in received.items()
                       if len(ids) > 1]
    mismatches += [f"events for unknown case {c}" for c in by_case.keys() - cases.keys()]
    platform = {"events_expected": sum(c["seq"] for c in cases.values()), "events_distinct": len(deliveries),
                "redelivered_same_id": redelivered}
    gateway = {"submissions": len(load.submissions), "acknowledged": len(acknowledged), "cases_in_redis": len(cases),
               "task_statuses": dict(statuses),
               "retried_submissions": sum(len(s.answers) > 1 for s in load.submissions)}
    return {"gateway": gateway, "departments": departments, "platform": platform, "mismatches": mismatches}


def print_ledgers(result: dict[str, Any], faults: dict[str, Any]) -> None:
    g, p = result["gateway"], result["platform"]
    print("\n=== ledgers ===")
    print(f"gateway : {g['acknowledged']} acknowledged of {g['submissions']} submitted ({g['retried_submissions']} "
          f"needed a retry), {g['cases_in_redis']} cases in Redis; tasks {g['task_statuses']}")
    print(f"{'department':<14}{'gateway answered':>18}{'registered':>12}{'dup. calls':>12}{'calls':>8}")
    for name, d in result["departments"].items():
        print(f"{name:<14}{d['gateway_answered']:>18}{d['registered']:>12}{d['duplicates_answered_from_cache']:>12}"
              f"{d['calls']:>8}")
    print(f"platform: {p['events_distinct']} distinct events of {p['events_expected']} expected "
          f"(+{p['redelivered_same_id']} redeliveries of an id already received)")
    print("\n=== faults injected ===")
    for name, value in faults.items():
        print(f"  {name}: {value}")
    print(f"\n=== mismatches: {len(result['mismatches'])} ===")
    for line in result["mismatches"][:50]:
        print("  " + line)


# ------------------------------------------------------------------------------------------------------- run


def progress(started: float, total: float, note: str) -> None:
    done = min(1.0, (time.monotonic() - started) / total)
    print(f"[{'#' * int(done * 30):<30}] {done * 100:3.0f}% {time.monotonic() - started:5.0f}s {note}", flush=True)


@contextlib.contextmanager
def mock_environment() -> Iterator[None]:
    """The mocks read their behaviour from the environment when created: fast reviews, a prompt applicant."""
    saved = dict(os.environ)
    os.environ.update({"MOCK_APPLICANT_DELAY_S": "0.3", "MOCK_HRSS_REVIEW_S": "0.5", "MOCK_HRSS_CARD_S": "0.5",
                       "MOCK_FAULTS": json.dumps(FAULTS)})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def soak(plan: Plan, folder: Path) -> dict[str, Any]:
    setup_started = time.monotonic()
    fault_counter = FaultCounter()
    with mock_environment():
        mocks_running: dict[str, RunningServer] = {name: start_in_thread(create_mock(name))
                                                   for name in (*DEPARTMENTS, "sms")}
    platform = Platform(refusal_rate=0.3)
    redis_server = RedisServer(folder)
    redis_server.start()
    identity = IdentityService(folder)
    callers = folder / "callers.json"
    callers.write_text(json.dumps([{"app_id": WINDOW[0], "secret": WINDOW[1], "kind": "window"},
                                   {"app_id": PLATFORM[0], "secret": PLATFORM[1]}]))
    api_ports = [free_port(), free_port()]
    env = dict(os.environ, GATEWAY_REDIS_URL=redis_server.url, GATEWAY_VAR_DIR=str(folder / "var"),
               GATEWAY_CALLERS_FILE=str(callers), GATEWAY_IDENTITY_JWKS_FILE=str(identity.jwks_path),
               GATEWAY_IDENTITY_ISSUER=identity.issuer, GATEWAY_WEBHOOK_URL=platform.url,
               GATEWAY_SMS_URL=mocks_running["sms"].url,
               # Departments call back, and applicants follow links, through the API that is never killed: the
               # load balancer's address in production.
               GATEWAY_PUBLIC_BASE_URL=f"http://127.0.0.1:{api_ports[1]}",
               GATEWAY_REDELIVER_AFTER_S="3", GATEWAY_OUTBOX_REDELIVER_AFTER_S="3", GATEWAY_OUTBOX_TIMEOUT_S="2",
               GATEWAY_RETRY_ATTEMPTS="60", GATEWAY_RETRY_MAX_S="900", GATEWAY_RETRY_INITIAL_S="0.1",
               GATEWAY_RETRY_CAP_S="2", GATEWAY_POLL_INITIAL_S="0.5", GATEWAY_POLL_CAP_S="3",
               GATEWAY_BREAKER_FAILURES="5", GATEWAY_BREAKER_OPEN_S="2", GATEWAY_OUTBOX_RETRY_CAP_S="2",
               # Applicant steps on a compressed schedule, as under `gateway up`: a payment whose link was spent
               # on a failed visit (a fault at the department's page) is reminded with a fresh link, as a person is.
               GATEWAY_STEP_REMINDERS_S="[8, 20]", GATEWAY_STEP_EXPIRY_S="50",
               GATEWAY_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    env.pop("GATEWAY_REDIS_SENTINELS", None)
    for name in DEPARTMENTS:
        env[f"GATEWAY_ADAPTERS__{name.upper()}__BASE_URL"] = mocks_running[name].url
        env[f"GATEWAY_ADAPTERS__{name.upper()}__TIMEOUT_S"] = "2"
    processes = Processes(folder, env)
    chaos: Counter[str] = Counter()
    try:
        api_urls = [f"http://127.0.0.1:{port}" for port in api_ports]
        for i, port in enumerate(api_ports):
            processes.start(f"api-{i + 1}", [GATEWAY, "api", "--port", str(port)])
        for i in (1, 2):
            processes.start(f"worker-{i}", [GATEWAY, "worker", "--name", f"worker-{i}"])
        for url in api_urls:
            wait_ready(url)
        print(f"gateway up (2 APIs, 2 workers) in {time.monotonic() - setup_started:.0f} s", flush=True)
        catalogue = GatewayClient(api_urls[0], *PLATFORM).profile("jiujiang").json()["matters"]
        load = Load(api_urls, identity, filled_sections(catalogue, JIUJIANG))  # as a form renders the schemas

        started = time.monotonic()
        total = plan.load_s + plan.drain_s
        events_at = {"outage_on": 0.25, "api_kill": 0.45, "redis_restart": 0.65}
        done_events: set[str] = set()
        next_worker_kill = plan.worker_kill_every_s
        next_progress = 0.0
        sent = 0
        killed_worker = 0
        outage_until = None
        while (elapsed := time.monotonic() - started) < plan.load_s:
            while sent < elapsed * plan.rate:
                load.submit(sent)
                sent += 1
            if elapsed >= next_worker_kill:
                name = f"worker-{killed_worker % 2 + 1}"
                processes.kill(name)
                processes.start(name)
                chaos["worker SIGKILL + restart"] += 1
                killed_worker += 1
                next_worker_kill += plan.worker_kill_every_s
            for what, at in events_at.items():
                if what in done_events or elapsed < at * plan.load_s:
                    continue
                done_events.add(what)
                if what == "outage_on":
                    httpx.post(mocks_running[OUTAGE_DEPARTMENT].url + "/_mock/faults",
                               json={**FAULTS, "outage": True}).raise_for_status()
                    outage_until = elapsed + plan.outage_s
                    chaos[f"{OUTAGE_DEPARTMENT} outage (s)"] = int(plan.outage_s)
                elif what == "api_kill":
                    processes.kill("api-1")
                    time.sleep(1)
                    processes.start("api-1")
                    chaos["API SIGKILL + restart"] += 1
                elif what == "redis_restart":
                    redis_server.kill()
                    time.sleep(1)
                    redis_server.start()
                    chaos["Redis SIGKILL + restart from AOF"] += 1
            if outage_until is not None and elapsed >= outage_until:
                httpx.post(mocks_running[OUTAGE_DEPARTMENT].url + "/_mock/faults", json=FAULTS).raise_for_status()
                outage_until = None
            if elapsed >= next_progress:
                acked = sum(1 for s in load.submissions if s.case_id)
                progress(started, total, f"sent {sent} acknowledged {acked} events {len(platform.events)} "
                                         f"kills {sum(n for what, n in chaos.items() if 'SIGKILL' in what)}")
                next_progress += 5
            time.sleep(0.05)
        if outage_until is not None:
            httpx.post(mocks_running[OUTAGE_DEPARTMENT].url + "/_mock/faults", json=FAULTS).raise_for_status()
        load.join()
        # Drain: the faults stay on (errors, hangs, garbage, refusals); only the killing stops.
        r = redis.Redis.from_url(redis_server.url, decode_responses=True)
        deadline = time.monotonic() + plan.drain_s
        while True:
            ledger = gateway_ledger(r)
            open_tasks = sum(t.get("status") not in TERMINAL for c in ledger["cases"].values()
                             for t in c["tasks"].values())
            received = len({e["event_id"] for e in platform.events})
            undelivered = sum(c["seq"] for c in ledger["cases"].values()) - received
            if (open_tasks == 0 and undelivered <= 0) or time.monotonic() > deadline:
                break
            progress(started, total, f"draining: {open_tasks} tasks open, {undelivered} events undelivered")
            time.sleep(3)
        time.sleep(1)  # a certificate issued with the last task reaches its event a moment later
        events = list(platform.events)  # first: every event it holds is then already counted in the case's seq
        reader = load.clients["platform"][1]  # the Jiujiang cases are the platform's own

        def certificates_of(case_id: str) -> int:
            return len(reader.get_case(case_id).json().get("certificates", []))

        ledger = gateway_ledger(r, certificates_of)
        stats = {name: httpx.get(server.url + "/_mock/stats").json() for name, server in mocks_running.items()}
        result = reconcile(load, ledger, stats, events)
        faults: dict[str, Any] = dict(chaos)
        for (name, kind), count in sorted(fault_counter.counts.items()):
            faults[f"{name} {kind}"] = count
        faults["webhook refusals"] = platform.refused
        faults["sms duplicates answered from cache"] = stats["sms"]["duplicates"]
        actions = httpx.get(mocks_running["sms"].url + "/_mock/applicant").json()["actions"]
        failed_visits = [a for a in actions if a.get("error")]
        faults["applicant link visits failed"] = len(failed_visits)
        if failed_visits:  # what the simulated applicant ran into, for whoever reads the run
            faults["first failed visit"] = {k: failed_visits[0].get(k) for k in ("get_status", "error", "final_url")}
        print_ledgers(result, faults)
        return {"plan": plan.__dict__, "seconds": round(time.monotonic() - started, 1), "faults": faults, **result}
    finally:
        processes.stop()
        redis_server.stop()
        # The mocks still hold calls they were told to hang: their servers cancel them, which is no news.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        servers = [platform.server, *mocks_running.values()]
        for server in servers:  # all told at once: each may wait for its hanging calls' grace period
            server.server.should_exit = True
        for server in servers:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="load (and chaos) duration")
    parser.add_argument("--rate", type=float, default=1.0, help="cases submitted per second")
    parser.add_argument("--quick", action="store_true", help="the suite's run: 25 s of load, at most 60 s to drain")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the processes' logs")
    args = parser.parse_args()
    plan = QUICK if args.quick else full(args.minutes, args.rate)
    folder = Path(tempfile.mkdtemp(prefix="gw-soak-"))
    try:
        result = soak(plan, folder)
    finally:
        if args.keep:
            print(f"logs: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    write_results("soak-quick" if args.quick else "soak", result)
    sys.exit(1 if result["mismatches"] else 0)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
