"""`gateway up` as a newcomer runs it: demo caller and identity key, a case carried to its certificate by the
mocks' simulated applicant, and a clean stop on SIGTERM with every child process gone."""

from __future__ import annotations

import json
import re
import time

import httpx

from gateway.client import GatewayClient, mint_demo_assertion
from tests.support.forms import valid_section
from tests.support.harness import applicant
from tests.support.processes import alive, children_of, start_gateway_up


def test_gateway_up_takes_a_case_to_its_certificate_and_stops_cleanly(tmp_path):
    up = start_gateway_up(tmp_path)
    try:
        base, printed, key = up.base_url, up.log.read_text(), up.identity_key
        assert key.exists() and "demo identity service" in printed
        person = applicant(division="360402", birth="19880202", sequence=161)
        client = GatewayClient(base, up.app_id, up.secret)
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
        children = children_of(up.process.pid)
        assert len(children) >= 4  # the embedded Redis, the mock departments, the API and the worker
    finally:
        returncode = up.stop()
    assert returncode == 0, up.log.read_text()[-2000:]
    time.sleep(0.5)
    assert not [pid for pid in children if alive(pid)], "children outlived gateway up"
    assert "gateway stopped" in up.log.read_text()
