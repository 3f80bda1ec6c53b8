"""Orchestration under load and faults: parallel plan, prerequisites, retries without duplicates, breakers,
callbacks, outbox redelivery, dead letters, overdue cases. Real Redis, real mocks over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store import keys
from mocks.common import callback_headers
from tests.support.forms import valid_section
from tests.support.harness import RunningGateway, applicant, start_gateway

MEDICAL_SECTION = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"],
                   "scheme": "combined_accounts"}
JIUJIANG_SECTIONS = {
    "employee_pension_enrolment": {"insured_place": "360400", "contribution_tier": 60, "insured_elsewhere": False},
    "employee_medical_enrolment": {"insured_place": "360400", "contribution_tier": "combined_accounts",
                                   "insured_elsewhere": False},
    "housing_fund_account": {"collection_point": "360400", "monthly_amount": 500, "has_employment_contract": False,
                             "insured_elsewhere": False, "income_and_credit": True,
                             "deposit_commitment": True},
}


def medical_case(sequence: int = 123, channel: str = "online") -> dict[str, Any]:
    return {"profile": "guangxi", "channel": channel, "applicant": applicant(sequence=sequence),
            "matters": ["employee_medical_enrolment"], "sections": {"employee_medical_enrolment": MEDICAL_SECTION},
            "delivery": channel}


def catalogue_sections(gw: RunningGateway, profile: str) -> dict[str, Any]:
    """Sections filled from the catalogue's schemas by a generic form filler, so the test follows the profile."""
    catalogue = {m["code"]: m for m in gw.client.profile(profile).json()["matters"]}
    return {code: valid_section(m["section_schema"], code) for code, m in catalogue.items()}


def jiujiang_sections(gw: RunningGateway) -> dict[str, Any]:
    return catalogue_sections(gw, "jiujiang")


def case_events(gw: RunningGateway, case_id: str, until: Any) -> list[dict[str, Any]]:
    events = gw.wait_events(lambda es: until([e for e in es if e["case_id"] == case_id]), timeout=30)
    return sorted((e for e in events if e["case_id"] == case_id), key=lambda e: e["seq"])


def metric(gw: RunningGateway, series: str) -> float:
    for line in httpx.get(gw.base_url + "/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture
def gw(redis_url, tmp_path):
    gateway = start_gateway(tmp_path, redis_url, applicant_delay="0.2")
    yield gateway
    gateway.stop()


def test_independent_matters_run_in_parallel_and_the_declaration_waits_for_enrolment(gw):
    for department in ("hrss", "medical", "housing_fund", "tax"):
        gw.faults(department, latency_ms=400)
    matters = ["employment_registration", "employee_pension_enrolment", "employee_medical_enrolment",
               "housing_fund_account", "contribution_declaration"]
    sections = jiujiang_sections(gw)
    person = applicant(division="360402", birth="19880202", sequence=131)
    body = {"profile": "jiujiang", "channel": "online", "applicant": person, "matters": matters,
            "sections": {m: sections[m] for m in matters if sections.get(m)}, "delivery": "online"}
    case_id = gw.submit(body).json()["id"]
    gw.wait_terminal(case_id, timeout=60)
    events = case_events(gw, case_id, lambda es: sum(e.get("status") == "completed" for e in es) >= 5)
    seq = {(e.get("matter"), e.get("status")): e["seq"] for e in events if e["type"] == "task.status_changed"}
    first_wave = matters[:4]
    # Every first-wave matter was sent before any of them was answered: they were in flight together.
    last_sent = max(seq[(m, "submitted")] for m in first_wave)
    first_answer = min(seq[(m, s)] for m in first_wave for s in ("completed", "awaiting_payment", "in_review")
                       if (m, s) in seq)
    assert last_sent < first_answer
    # The fee declaration was queued only after both enrolments it depends on had completed.
    assert seq[("contribution_declaration", "queued")] > seq[("employee_pension_enrolment", "completed")]
    assert seq[("contribution_declaration", "queued")] > seq[("employee_medical_enrolment", "completed")]


def test_an_applicant_refused_as_already_enrolled_still_declares(gw):
    """Seed 000 三.5: 未在用人单位参加社会保险的…灵活就业人员，可以直接向社会保险费征收机构缴纳社会保险费.

    A refusal because the person is already enrolled (重复参保) satisfies the declaration's prerequisite; only a
    prerequisite refused for another reason skips it (tests/unit/test_domain_flow.py).
    """
    already_enrolled = applicant(division="360402", birth="19880202", sequence=137)
    sections = jiujiang_sections(gw)
    matters = ["employee_pension_enrolment", "contribution_declaration"]
    body = {"profile": "jiujiang", "channel": "online", "applicant": already_enrolled, "matters": matters,
            "sections": {m: sections[m] for m in matters if sections.get(m)}, "delivery": "online"}
    case = gw.wait(gw.submit(body).json()["id"],
                   lambda c: {t["matter"]: t for t in c["tasks"]}["contribution_declaration"]["status"]
                   not in ("pending", "queued", "submitted"))
    tasks = {t["matter"]: t for t in case["tasks"]}
    assert tasks["employee_pension_enrolment"]["status"] == "rejected"
    assert tasks["contribution_declaration"]["status"] in ("awaiting_payment", "completed")
    assert gw.stats("tax")["received"] >= 1


@pytest.mark.parametrize("fault", [{"error_rate": 0.5}, {"timeout_rate": 0.4}, {"malformed_rate": 0.5}],
                         ids=["5xx", "timeout", "malformed"])
def test_technical_faults_are_retried_and_nobody_is_registered_twice(redis_url, tmp_path, fault):
    gw = start_gateway(tmp_path, redis_url, breaker_failures=1000, retry_attempts=12, retry_max_s=20)
    try:
        gw.faults("medical", **fault)
        case_ids = [gw.submit(medical_case(sequence=100 + 10 * i + 3)).json()["id"] for i in range(8)]
        finals = [gw.wait_terminal(case_id, timeout=60) for case_id in case_ids]
        assert [c["tasks"][0]["status"] for c in finals] == ["completed"] * 8
        stats = gw.stats("medical")
        assert stats["registrations"] == 8, stats
        assert metric(gw, 'gateway_department_retries_total{adapter="medical"}') > 0  # faults happened, retried
    finally:
        gw.stop()


def test_the_breaker_opens_on_an_outage_tasks_wait_and_resume_after_it(gw):
    gw.faults("medical", outage=True)
    case_id = gw.submit(medical_case()).json()["id"]
    metrics_url = gw.base_url + "/metrics"
    deadline = time.monotonic() + 20
    while 'gateway_breaker_open{adapter="medical"} 1.0' not in httpx.get(metrics_url).text:
        assert time.monotonic() < deadline, "breaker did not open"
        time.sleep(0.1)
    received_while_open = gw.stats("medical")["received"]
    time.sleep(1.0)
    assert gw.case(case_id)["tasks"][0]["status"] == "submitted"  # waiting, not burned as a failure
    assert gw.stats("medical")["received"] == received_while_open  # no calls while open
    gw.faults("medical", outage=False)
    case = gw.wait_terminal(case_id, timeout=30)
    assert case["tasks"][0]["status"] == "completed"
    assert gw.stats("medical")["registrations"] == 1
    assert 'gateway_breaker_deferred_total{adapter="medical"}' in httpx.get(metrics_url).text


def signed_callback(secret: str, payload: dict[str, Any], prefix: str, adapter: str,
                    request_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, callback_headers(secret, adapter, request_id, body, signature_header=f"X-{prefix}-Signature",
                                  timestamp_header=f"X-{prefix}-Timestamp")


def test_forged_callbacks_change_nothing_and_duplicates_are_harmless(gw):
    archive_body = {"profile": "guangxi", "channel": "online", "applicant": applicant(sequence=133),
                 "matters": ["archive_transfer"], "delivery": "online",
                 "sections": {"archive_transfer": catalogue_sections(gw, "guangxi")["archive_transfer"]}}
    response = gw.submit(archive_body)
    if response.status_code != 202:
        pytest.fail(response.text)
    case_id = response.json()["id"]
    task = gw.wait(case_id, lambda c: c["tasks"][0]["status"] == "in_review")["tasks"][0]
    request_id = gw.redis().hget(keys.task(case_id, "archive_transfer"), "request_id")
    payload = {"requestId": request_id, "rc": "0", "errcode": None, "message": "办结", "zt": "09",
               "ywlsh": task["reference"]}
    url = gw.base_url + "/v1/callbacks/hrss"
    body, headers = signed_callback("not-the-department-key", payload, "Hrss", "hrss", request_id)
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    assert httpx.post(url, content=body, headers={"Content-Type": "application/json"}).status_code == 401
    assert gw.case(case_id)["tasks"][0]["status"] == "in_review"
    case = gw.wait_terminal(case_id)  # the department's own genuine callback (or our poll) completes it
    assert case["tasks"][0]["status"] == "completed"
    body, headers = signed_callback(gw.callback_secrets["hrss"], payload, "Hrss", "hrss", request_id)
    repeat = httpx.post(url, content=body, headers=headers)
    assert repeat.status_code == 200 and repeat.json()["result"] == "duplicate"
    late = dict(payload, zt="01", message="已受理，审核中")
    body, headers = signed_callback(gw.callback_secrets["hrss"], late, "Hrss", "hrss", request_id)
    assert httpx.post(url, content=body, headers=headers).json()["result"] == "stale"
    assert gw.case(case_id)["tasks"][0]["status"] == "completed"


def test_the_outbox_redelivers_after_the_webhook_was_down_each_event_once(gw):
    gw.webhook.failing = True
    case_id = gw.submit(medical_case()).json()["id"]
    gw.wait_terminal(case_id)
    time.sleep(1.0)
    assert not [e for e in gw.webhook.events if e["case_id"] == case_id]
    gw.webhook.failing = False
    events = case_events(gw, case_id, lambda es: any(e.get("status") == "completed" for e in es))
    time.sleep(3.5)  # a further redelivery round must not send anything twice
    mine = [e for e in gw.webhook.events if e["case_id"] == case_id]
    # Each event once, none missing (an event after `completed` may have arrived since `events` was taken).
    assert len(mine) == len({e["event_id"] for e in mine}) >= len(events)
    assert sorted(e["seq"] for e in mine) == list(range(1, len(mine) + 1))
    assert [e["type"] for e in events][0] == "case.accepted"
    headers = gw.webhook.headers[-1]
    assert headers["x-gateway-signature"] and headers["x-gateway-event-id"]


def test_an_unknown_native_code_is_explicit_counted_and_alerting(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url)  # nobody pays: the declaration waits for the applicant
    try:
        sections = jiujiang_sections(gw)
        person = applicant(division="360402", birth="19880202", sequence=141)
        matters = ["employee_medical_enrolment", "contribution_declaration"]
        body = {"profile": "jiujiang", "channel": "online", "applicant": person, "matters": matters,
                "sections": {m: sections[m] for m in matters if sections.get(m)}, "delivery": "online"}
        series = 'gateway_unknown_native_status_total{adapter="tax"}'
        before = metric(gw, series)  # counters live as long as the process, across tests
        case_id = gw.submit(body).json()["id"]
        gw.wait(case_id, lambda c: c["tasks"][1]["status"] == "awaiting_payment")
        request_id = gw.redis().hget(keys.task(case_id, "contribution_declaration"), "request_id")
        # The tax system calls back with a state nobody put in its status table.
        payload = {"head": {"tranId": "SBF.TZ.JKJG", "tranSeq": request_id, "rtnCode": "0000", "rtnMsg": "成功"},
                   "body": {"ywlsh": request_id, "sbzt": "refund_pending"}}
        raw, headers = signed_callback(gw.callback_secrets["tax"], payload, "Gt3", "tax", request_id)
        answer = httpx.post(gw.base_url + "/v1/callbacks/tax", content=raw, headers=headers)
        assert answer.json()["result"] == "applied"
        case = gw.case(case_id)
        assert case["tasks"][1]["status"] == "unknown_native_status" and case["status"] == "attention_needed"
        assert case["tasks"][1]["native_status"] == "refund_pending"
        assert metric(gw, series) == before + 1
    finally:
        gw.stop()


def test_overdue_cases_are_listed(gw):
    case_id = gw.submit(medical_case()).json()["id"]
    gw.wait_terminal(case_id)
    open_case = gw.submit(medical_case(sequence=153)).json()["id"]
    gw.faults("medical", outage=True)
    late = gw.submit(medical_case(sequence=163)).json()["id"]
    # The promised deadline is 8 working days away: move this case's deadline into the past, as time would.
    gw.redis().zadd(keys.open_cases(keys.shard_of(late)), {late: time.time() - 60})
    listed = gw.client.overdue_cases().json()
    assert [c["id"] for c in listed["cases"]] == [late] and listed["count"] == 1
    assert open_case not in [c["id"] for c in listed["cases"]]


def test_exhausted_retries_dead_letter_and_the_cli_replays_them(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, breaker_failures=1000, retry_attempts=3, retry_max_s=3)
    try:
        gw.faults("medical", error_rate=1.0)
        case_id = gw.submit(medical_case()).json()["id"]
        case = gw.wait_terminal(case_id)
        assert case["tasks"][0]["status"] == "failed" and case["status"] == "attention_needed"
        env = dict(os.environ, GATEWAY_REDIS_URL=redis_url, GATEWAY_VAR_DIR=str(tmp_path / "var"),
                   GATEWAY_ADAPTERS__MEDICAL__BASE_URL=gw.mock("medical"))
        gateway_cmd = str(Path(sys.executable).parent / "gateway")
        listing = subprocess.run([gateway_cmd, "dlq", "list"], env=env, capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0, listing.stderr
        assert case_id in listing.stdout and "1 dead-lettered task(s)" in listing.stdout
        gw.faults("medical", error_rate=0.0)
        replay = subprocess.run([gateway_cmd, "dlq", "replay", "--adapter", "medical"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert replay.returncode == 0 and "replayed 1 task(s)" in replay.stdout, replay.stdout + replay.stderr
        assert gw.wait_terminal(case_id)["tasks"][0]["status"] == "completed"
        assert gw.stats("medical")["registrations"] == 1
        after = subprocess.run([gateway_cmd, "dlq", "list"], env=env, capture_output=True, text=True, timeout=60)
        assert "0 dead-lettered task(s)" in after.stdout
    finally:
        gw.stop()


def test_under_faults_everywhere_every_case_ends_each_registration_once_each_event_once(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, applicant_delay="0.1", breaker_failures=1000, retry_attempts=12,
                       retry_max_s=30, outbox_retry_cap_s=0.5)
    try:
        for mock in ("hrss", "medical", "tax", "housing_fund", "e_license", "sms"):
            gw.faults(mock, error_rate=0.2, malformed_rate=0.1, timeout_rate=0.03)
        gw.webhook.refusal_rate = 0.3
        sections = jiujiang_sections(gw)
        matters = list(sections)
        case_ids = []
        for i in range(4):
            person = applicant(division="360402", birth="19880202", sequence=200 + 10 * i + 3)
            body = {"profile": "jiujiang", "channel": "online", "applicant": person, "matters": matters,
                    "sections": {m: sections[m] for m in matters if sections.get(m)}, "delivery": "online"}
            case_ids.append(gw.submit(body).json()["id"])
        finals = [gw.wait_terminal(case_id, timeout=120) for case_id in case_ids]
        assert all(t["status"] == "completed" for case in finals for t in case["tasks"]), \
            [[(t["matter"], t["status"]) for t in c["tasks"]] for c in finals]
        for department, expected in (("hrss", 8), ("medical", 4), ("tax", 4), ("housing_fund", 4)):
            assert gw.stats(department)["registrations"] == expected, (department, gw.stats(department))
        gw.webhook.refusal_rate = 0.0
        for case_id in case_ids:
            expected_events = int(gw.redis().hget(keys.case(case_id), "seq"))
            events = case_events(gw, case_id, lambda es, n=expected_events: len({e["event_id"] for e in es}) >= n)
            assert [e["seq"] for e in events] == list(range(1, expected_events + 1))  # each once, none missing
    finally:
        gw.stop()


def test_events_refused_too_often_are_parked_counted_and_replayed_from_the_cli(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, outbox_max_attempts=2, outbox_retry_cap_s=0.2, redeliver_after_s=1.0)
    try:
        gw.webhook.failing = True
        case_id = gw.submit(medical_case()).json()["id"]
        gw.wait_terminal(case_id)
        expected = int(gw.redis().hget(keys.case(case_id), "seq"))
        deadline = time.monotonic() + 30
        while gw.redis().llen("gw:outbox:dead") < expected:
            assert time.monotonic() < deadline, gw.redis().llen("gw:outbox:dead")
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        while metric(gw, "gateway_outbox_parked") < expected:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        gw.webhook.failing = False
        env = dict(os.environ, GATEWAY_REDIS_URL=redis_url, GATEWAY_VAR_DIR=str(tmp_path / "var"))
        replay = subprocess.run([str(Path(sys.executable).parent / "gateway"), "outbox", "replay"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert replay.returncode == 0 and f"replayed {expected} parked event(s)" in replay.stdout, replay.stderr
        events = case_events(gw, case_id, lambda es: len(es) >= expected)
        assert [e["seq"] for e in events] == list(range(1, expected + 1))  # each delivered once
        assert gw.redis().llen("gw:outbox:dead") == 0
    finally:
        gw.stop()
