"""Separate processes, as production runs them: several APIs and workers on one Redis; a worker killed with
SIGKILL mid-task; Redis killed with SIGKILL and restarted from its AOF. Nothing acknowledged may be lost and no
department may register anybody twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from gateway.client import GatewayClient
from gateway.store import keys
from gateway.store.embedded_redis import EmbeddedRedis
from mocks.serving import RunningServer, create_mock, free_port, start_in_thread
from tests.support.harness import (
    OPERATOR,
    PLATFORM,
    TERMINAL,
    WINDOW,
    IdentityService,
    holding_consumers,
    medical_case,
    stream_pending,
)
from tests.support.processes import accepted_connections, alive, children_of

GATEWAY = str(Path(sys.executable).parent / "gateway")
def window_case(sequence: int) -> dict[str, Any]:
    return medical_case("window", sequence)


class Cluster:
    """Gateway processes started with the `gateway` command against one Redis and one medical mock."""

    def __init__(self, tmp_path: Path, redis_url: str, medical: RunningServer) -> None:
        callers = tmp_path / "callers.json"
        callers.write_text(json.dumps([{"app_id": WINDOW[0], "secret": WINDOW[1], "kind": "window"},
                                       {"app_id": PLATFORM[0], "secret": PLATFORM[1]}]))
        identity = IdentityService(tmp_path)
        self.env = dict(os.environ, GATEWAY_REDIS_URL=redis_url, GATEWAY_VAR_DIR=str(tmp_path / "var"),
                        GATEWAY_CALLERS_FILE=str(callers), GATEWAY_IDENTITY_JWKS_FILE=str(identity.jwks_path),
                        GATEWAY_IDENTITY_ISSUER=identity.issuer, GATEWAY_ADAPTERS__MEDICAL__BASE_URL=medical.url,
                        GATEWAY_ADAPTERS__MEDICAL__TIMEOUT_S="5", GATEWAY_REDELIVER_AFTER_S="2",
                        GATEWAY_RETRY_INITIAL_S="0.05", GATEWAY_RETRY_CAP_S="0.3", GATEWAY_LOG_LEVEL="INFO",
                        PYTHONUNBUFFERED="1")
        self.env.pop("GATEWAY_WEBHOOK_URL", None)
        self.tmp_path = tmp_path
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.api_urls: list[str] = []

    def start_api(self, name: str, *options: str) -> str:
        port = free_port()
        self._start(name, [GATEWAY, "api", "--port", str(port), *options])
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert self.processes[name].poll() is None, self.log(name)
            assert time.monotonic() < deadline, f"{name} not ready: {self.log(name)}"
            time.sleep(0.2)
        self.api_urls.append(url)
        return url

    def start_worker(self, name: str) -> None:
        self._start(name, [GATEWAY, "worker", "--name", name])

    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for name, process in self.processes.items():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                pytest.fail(f"{name} did not stop on SIGTERM")


@pytest.fixture
def medical() -> Iterator[RunningServer]:
    server = start_in_thread(create_mock("medical"))
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def wait_all_terminal(clients: list[GatewayClient], case_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        cases = [clients[i % len(clients)].get_case(case_id) for i, case_id in enumerate(case_ids)]
        bodies = [c.json() for c in cases if c.status_code == 200]
        if len(bodies) == len(case_ids) and all(t["status"] in TERMINAL for b in bodies for t in b["tasks"]):
            return bodies
        assert time.monotonic() < deadline, [(b["id"][:6], [t["status"] for t in b["tasks"]]) for b in bodies]
        time.sleep(0.2)


def test_a_worker_killed_mid_task_loses_nothing_and_registers_nobody_twice(tmp_path, own_redis, medical):
    httpx.post(medical.url + "/_mock/faults", json={"latency_ms": 1500}).raise_for_status()
    cluster = Cluster(tmp_path, own_redis.url, medical)
    try:
        urls = [cluster.start_api("api-1"), cluster.start_api("api-2")]
        cluster.start_worker("worker-a")
        clients = [GatewayClient(url, *WINDOW, operator_id=OPERATOR) for url in urls]
        case_ids = []
        for i in range(6):
            response = clients[i % 2].submit_case(window_case(100 + 10 * i + 3))
            assert response.status_code == 202, response.text
            case_ids.append(response.json()["id"])
        # Wait until worker-a holds messages it has read but not finished, then kill it without warning.
        r = redis.Redis.from_url(own_redis.url, decode_responses=True)
        deadline = time.monotonic() + 20
        while "worker-a" not in holding_consumers(r):
            assert time.monotonic() < deadline, cluster.log("worker-a")
            time.sleep(0.05)
        cluster.kill("worker-a")
        cluster.start_worker("worker-b")
        finals = wait_all_terminal(clients, case_ids, timeout=90)
        assert [b["tasks"][0]["status"] for b in finals] == ["completed"] * 6
        stats = httpx.get(medical.url + "/_mock/stats").json()
        assert stats["registrations"] == 6, stats
        assert stream_pending(r, keys.task_stream, keys.TASK_GROUP) == 0
    finally:
        cluster.stop()


def test_redis_killed_and_restarted_loses_no_acknowledged_case(tmp_path, own_redis, medical):
    cluster = Cluster(tmp_path, own_redis.url, medical)
    try:
        url = cluster.start_api("api")
        client = GatewayClient(url, *WINDOW, operator_id=OPERATOR)
        acknowledged = []
        for i in range(20):
            response = client.submit_case(window_case(100 + 10 * (i % 70) + 3 + (i // 70)))
            assert response.status_code == 202, response.text
            acknowledged.append(response.json()["id"])
        own_redis.kill()  # SIGKILL right after the last acknowledgement: no clean shutdown, no final fsync
        own_redis.start()
        cluster.start_worker("worker")  # the worker only starts now: every task must come from the restarted AOF
        finals = wait_all_terminal([client], acknowledged, timeout=90)
        assert {b["id"] for b in finals} == set(acknowledged)
        assert [b["tasks"][0]["status"] for b in finals] == ["completed"] * 20
        assert httpx.get(medical.url + "/_mock/stats").json()["registrations"] == 20
    finally:
        cluster.stop()


def test_a_step_slower_than_the_redelivery_window_is_not_taken_over_by_another_worker(tmp_path, own_redis, medical):
    httpx.post(medical.url + "/_mock/faults", json={"latency_ms": 4500}).raise_for_status()
    cluster = Cluster(tmp_path, own_redis.url, medical)  # GATEWAY_REDELIVER_AFTER_S=2: well below 4.5 s
    try:
        client = GatewayClient(cluster.start_api("api"), *WINDOW, operator_id=OPERATOR)
        cluster.start_worker("worker-a")
        cluster.start_worker("worker-b")
        # Both must be reading before the cases arrive, or nobody could take over a step anyway.
        deadline = time.monotonic() + 30
        while not all("worker started" in cluster.log(name) for name in ("worker-a", "worker-b")):
            assert time.monotonic() < deadline, cluster.log("worker-b")
            time.sleep(0.1)
        case_ids = [client.submit_case(window_case(100 + 10 * i + 5)).json()["id"] for i in range(4)]
        finals = wait_all_terminal([client], case_ids, timeout=60)
        assert [b["tasks"][0]["status"] for b in finals] == ["completed"] * 4
        stats = httpx.get(medical.url + "/_mock/stats").json()
        assert stats["registrations"] == 4 and stats["duplicates"] == 0, stats
    finally:
        cluster.stop()


def test_api_processes_share_one_port_count_metrics_together_and_stop_together(tmp_path, own_redis, medical):
    cluster = Cluster(tmp_path, own_redis.url, medical)
    try:
        url = cluster.start_api("api", "--processes", "2")
        port = int(url.rsplit(":", 1)[1])
        supervisor = cluster.processes["api"]
        deadline = time.monotonic() + 60
        while len(api_pids := children_of(supervisor.pid)) < 2:
            assert time.monotonic() < deadline, cluster.log("api")
            time.sleep(0.1)
        # 32 connections held open: the kernel spreads them over both processes' SO_REUSEPORT sockets.
        clients = [httpx.Client(base_url=url) for _ in range(32)]
        try:
            assert {client.get("/healthz").status_code for client in clients} == {200}
            served = {pid: accepted_connections(pid, port) for pid in api_pids}
        finally:
            for client in clients:
                client.close()
        assert sum(served.values()) == 32 and all(served.values()), served
        # Whichever process answers /metrics counts every process's requests.
        families = text_string_to_metric_families(httpx.get(url + "/metrics").text)
        healthz = sum(sample.value for family in families if family.name == "gateway_api_requests"
                      for sample in family.samples
                      if sample.name == "gateway_api_requests_total" and sample.labels["route"] == "/healthz")
        assert healthz == 32
        supervisor.send_signal(signal.SIGTERM)  # to the supervisor alone: it stops its children
        assert supervisor.wait(30) == 0, cluster.log("api")
        assert not [pid for pid in api_pids if alive(pid)], "API processes outlived their supervisor"
    finally:
        cluster.stop()
