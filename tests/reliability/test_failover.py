"""Failover through Sentinel: the primary is killed with SIGKILL mid-load, Sentinel promotes the replica, the gateway
follows it. Every case the platform saw acknowledged is there and finishes; nothing is half-written; what was refused
was refused with an error the platform saw, and its retry with the same Idempotency-Key settles it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store import keys
from gateway.store.embedded_redis import EmbeddedRedis
from tests.support.harness import TERMINAL, RunningGateway, applicant, start_gateway
from tests.support.sentinel import MASTER_NAME, SentinelCluster

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
CASES = 50
GATEWAY = str(Path(sys.executable).parent / "gateway")
NOT_REPLICATED = -503  # recorded instead of 503 when the refusal says the case is not on a replica yet


def window_case(i: int) -> dict[str, Any]:
    return {"profile": "guangxi", "channel": "window", "delivery": "window",
            "applicant": applicant(birth=f"1985{1 + i // 28:02d}{1 + i % 28:02d}", sequence=123),
            "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}


@dataclass
class Submission:
    key: str
    answers: list[int] = field(default_factory=list)  # every status the platform saw, 0 for no answer at all
    case_id: str | None = None


@pytest.fixture
def sentinel_cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    (tmp_path / "redis").mkdir()
    cluster = SentinelCluster(tmp_path / "redis")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def submit_until_acknowledged(gw: RunningGateway, body: dict[str, Any], submission: Submission) -> None:
    """The platform's side: an error or no answer is retried with the same Idempotency-Key until acknowledged."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            response = gw.window_client.submit_case(body, idempotency_key=submission.key)
        except httpx.HTTPError:
            submission.answers.append(0)
        else:
            submission.answers.append(response.status_code)
            if response.status_code in (200, 202):
                submission.case_id = response.json()["id"]
                return
            assert response.status_code >= 500, response.text  # a refusal of the body itself would be a bug here
            if response.status_code == 503:  # the one error shape, and when to come back
                code = response.json()["errors"][0]["code"]
                assert code in ("store.not_replicated", "service.busy") and response.headers["Retry-After"]
                if code == "store.not_replicated":
                    submission.answers[-1] = NOT_REPLICATED
        time.sleep(0.2)


def half_written(gw: RunningGateway) -> list[str]:
    """Cases without all their tasks, and tasks without their case."""
    r = gw.redis()
    problems = []
    case_keys = set(r.scan_iter("gw:{*}:c:*:case"))
    for case_key in case_keys:
        case_id = case_key.partition(":c:")[2].removesuffix(":case")
        matters = r.hget(case_key, "matters")
        if matters is None:
            problems.append(f"case {case_id} without its fields")
            continue
        problems += [f"case {case_id} without its task {matter}" for matter in json.loads(matters)
                     if not r.exists(keys.task(case_id, matter))]
    problems += [f"{task_key} without its case" for task_key in r.scan_iter("gw:{*}:c:*:task:*")
                 if task_key.split(":task:")[0] + ":case" not in case_keys]
    return problems


def test_the_primary_killed_mid_load_loses_no_acknowledged_case(tmp_path, sentinel_cluster):
    gw = start_gateway(tmp_path, sentinel_cluster.url, redis_wait_replicas=1, redis_wait_timeout_ms=500)
    try:
        submissions = [Submission(key=uuid.uuid4().hex) for _ in range(CASES)]
        threads: list[threading.Thread] = []
        killed_after = CASES // 3
        old = sentinel_cluster.primary_port()
        for i, submission in enumerate(submissions):
            if i == killed_after:
                sentinel_cluster.kill(sentinel_cluster.name_of(old))
                sentinel_cluster.wait_promoted(old)
            if i == killed_after + 5:
                # The old primary comes back (as ops would restart it) and Sentinel makes it the new replica. Until
                # it has synced, WAIT 1 cannot be met: the cases sent meanwhile are refused with 503 and retried.
                sentinel_cluster.start_server(sentinel_cluster.name_of(old))
            thread = threading.Thread(target=submit_until_acknowledged, args=(gw, window_case(i), submission))
            thread.start()
            threads.append(thread)
            time.sleep(0.08)
        for thread in threads:
            thread.join(120)
        assert sentinel_cluster.primary_port() != old
        assert [s.answers for s in submissions if not s.case_id] == []
        for submission in submissions:
            case = gw.wait_terminal(str(submission.case_id), timeout=90)
            assert all(t["status"] in TERMINAL for t in case["tasks"])
        assert len({s.case_id for s in submissions}) == CASES  # one case per application, retries included
        assert half_written(gw) == []
        # Between the promotion and the old primary's return the new primary had no replica: refused, not lost.
        assert any(NOT_REPLICATED in s.answers for s in submissions[killed_after:killed_after + 5])
        # Ops commands find the new primary through the Sentinels too.
        dead = submissions[0].case_id
        gw.redis().zadd(keys.dlq(keys.shard_of(dead)), {f"{dead}|employee_medical_enrolment": time.time()})
        env = dict(os.environ, GATEWAY_REDIS_SENTINELS=sentinel_cluster.sentinels,
                   GATEWAY_REDIS_MASTER_NAME=MASTER_NAME, GATEWAY_VAR_DIR=str(tmp_path / "var"))
        env.pop("GATEWAY_REDIS_URL", None)
        listed = subprocess.run([GATEWAY, "dlq", "list"], env=env, capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert f"{submissions[0].case_id} employee_medical_enrolment" in listed.stdout
    finally:
        gw.stop()


def test_while_redis_is_down_the_api_answers_503_in_the_one_error_shape(tmp_path):
    server = EmbeddedRedis(tmp_path / "own-redis")
    server.start()
    gw = start_gateway(tmp_path, server.url)
    try:
        server.kill()
        response = gw.window_client.submit_case(window_case(0), idempotency_key=uuid.uuid4().hex)
        assert response.status_code == 503, response.text
        assert response.json()["errors"][0]["code"] == "service.busy"
        assert response.headers["Retry-After"] == "1"
    finally:
        gw.stop()
        server.stop()
