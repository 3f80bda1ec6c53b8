"""`gateway up` as a newcomer runs it: demo caller and identity key, a case carried to its certificate by the
mocks' simulated applicant, and a clean stop on SIGTERM with every child process gone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.client import GatewayClient, mint_demo_assertion
from mocks.serving import free_port
from tests.support.forms import valid_section
from tests.support.harness import applicant
from tests.support.processes import alive, children_of

GATEWAY = str(Path(sys.executable).parent / "gateway")
REPO = Path(__file__).resolve().parents[2]


def test_gateway_up_takes_a_case_to_its_certificate_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_"))}
    env.update(GATEWAY_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen([GATEWAY, "up", "--port", str(port)], cwd=REPO, env=env, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert up.poll() is None, log.read_text()
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        printed = log.read_text()
        caller = re.search(r"demo caller: app_id=(\S+) secret=(\S+)", printed)
        assert caller, printed
        key = tmp_path / "var" / "identity" / "demo-idp-key.pem"
        assert key.exists() and "demo identity service" in printed
        person = applicant(division="360402", birth="19880202", sequence=161)
        client = GatewayClient(base, caller.group(1), caller.group(2))
        catalogue = {m["code"]: m for m in client.profile("jiujiang").json()["matters"]}
        matters = list(catalogue)
        body = {"profile": "jiujiang", "channel": "online", "applicant": person, "matters": matters,
                "sections": {m: valid_section(catalogue[m]["section_schema"], m) for m in matters},
                "delivery": "online"}
        response = client.submit_case(body, assertion=mint_demo_assertion(key, person["id_number"], person["name"]))
        assert response.status_code == 202, response.text
        case_id = response.json()["id"]
        deadline = time.monotonic() + 90
        while not (case := client.get_case(case_id).json())["certificates"]:
            assert time.monotonic() < deadline, json.dumps(case, ensure_ascii=False)[:1500]
            time.sleep(0.5)
        assert {t["status"] for t in case["tasks"]} == {"completed"} and case["status"] == "completed"
        # The worker is a process of its own; the API's /metrics still counts its department calls.
        metrics = httpx.get(base + "/metrics").text
        assert re.search(r'gateway_department_calls_total\{adapter="hrss",[^}]*outcome="ok"\} [1-9]', metrics), metrics
        children = children_of(up.pid)
        assert len(children) >= 4  # the embedded Redis, the mock departments, the API and the worker
    finally:
        up.send_signal(signal.SIGTERM)  # to `gateway up` alone: it must stop its children itself
        returncode = up.wait(60)
    assert returncode == 0, log.read_text()[-2000:]
    time.sleep(0.5)
    assert not [pid for pid in children if alive(pid)], "children outlived gateway up"
    assert "gateway stopped" in log.read_text()
