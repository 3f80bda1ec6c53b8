"""The operator's command line on a finished case: `gateway cases show` (its history from the audit chain, personal
data masked) and `gateway status` (adapters, breakers, queues, outbox, workers' heartbeats), as a person types them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.store import keys
from tests.support.harness import RunningGateway, applicant, start_gateway

GATEWAY = str(Path(sys.executable).parent / "gateway")
MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}


def gateway_command(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OTEL_"))}
    env |= {"GATEWAY_REDIS_URL": gw.redis_url, "GATEWAY_VAR_DIR": str(gw.settings.var_dir), "COLUMNS": "200"}
    for name, server in gw.mocks.items():
        env[f"GATEWAY_ADAPTERS__{name.upper()}__BASE_URL"] = server.url
    return subprocess.run([GATEWAY, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_cases_show_and_status_on_a_finished_case(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url)
    try:
        person = applicant()
        body = {"profile": "guangxi", "channel": "online", "applicant": person, "delivery": "online",
                "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION}}
        case_id = gw.submit(body).json()["id"]
        case = gw.wait_terminal(case_id)
        assert case["status"] == "completed"
        request_id = gw.redis().hget(keys.task(case_id, "employee_medical_enrolment"), "request_id")

        shown = gateway_command(gw, "cases", "show", case_id)
        assert shown.returncode == 0, shown.stderr[-2000:]
        out = shown.stdout
        for expected in (case_id, "case.accepted", "task.status_changed", "caller test-platform", "medical reply",
                         "completed", request_id, "intact"):
            assert expected in out, f"{expected!r} missing from:\n{out}"
        # Personal data masked: the ID number and the phone by their ends, the name by its first character.
        assert "4501**********1239" in out and person["id_number"] not in out
        assert "1391***5678" in out and person["phone"] not in out
        assert "韦**" in out and person["name"] not in out

        missing = gateway_command(gw, "cases", "show", "no-such-case")
        assert missing.returncode == 1 and "no case no-such-case" in missing.stderr

        status = gateway_command(gw, "status")
        assert status.returncode == 0, status.stderr[-2000:]
        out = status.stdout
        medical = next(line for line in out.splitlines() if " medical " in line)
        assert "up" in medical and "closed" in medical and "rest" in medical
        assert "dead-lettered tasks" in out and "outbox parked" in out
        consumer = next(k for k in gw.redis().scan_iter("gw:workers:*")).removeprefix("gw:workers:")
        assert consumer.startswith("test-") and consumer in out
    finally:
        gw.stop()

    # Without a live worker (its heartbeat expired) status says so and exits 1.
    gw.redis().delete(f"gw:workers:{consumer}")
    lonely = gateway_command(gw, "status")
    assert lonely.returncode == 1 and "no live worker" in lonely.stdout
