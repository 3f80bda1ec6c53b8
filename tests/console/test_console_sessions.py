"""Sign-in, sessions, CSRF and roles, over HTTP without a browser."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest

from gateway.store import keys
from tests.console.support import (
    OPERATOR,
    VIEWER,
    awaiting_payment_case,
    csrf_of,
    dead_lettered_case,
    medical_case,
    sign_in,
    start_console_gateway,
)
from tests.support.harness import dead_letter_count


@pytest.fixture
def gw(redis_url, tmp_path):
    gateway = start_console_gateway(tmp_path, redis_url)
    yield gateway
    gateway.stop()


def test_without_a_session_every_page_sends_to_sign_in(gw):
    with httpx.Client(base_url=gw.base_url) as client:
        for path in ("/console/", "/console/cases/nope", "/console/health"):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login?next=")
        assert client.get("/console/health/fragment").status_code == 401


def test_a_wrong_password_or_unknown_id_signs_nobody_in(gw):
    with httpx.Client(base_url=gw.base_url) as client:
        token = re.search(r'name="login_token" value="([^"]+)"', client.get("/console/login").text).group(1)
        for operator_id, password in ((OPERATOR[0], "wrong"), ("nobody", OPERATOR[1])):
            answer = client.post("/console/login", data={"id": operator_id, "password": password,
                                                         "login_token": token})
            assert answer.status_code == 401 and "gw_console" not in answer.cookies
        assert client.get("/console/").status_code == 303


def test_an_id_is_locked_after_repeated_failed_sign_ins(gw):
    with httpx.Client(base_url=gw.base_url) as client:
        token = re.search(r'name="login_token" value="([^"]+)"', client.get("/console/login").text).group(1)
        for _ in range(10):
            answer = client.post("/console/login", data={"id": OPERATOR[0], "password": "guess", "login_token": token})
            assert answer.status_code == 401
        right = client.post("/console/login", data={"id": OPERATOR[0], "password": OPERATOR[1], "login_token": token})
        assert right.status_code == 429 and "gw_console" not in right.cookies
    sign_in(gw, VIEWER)  # another id is not locked


def test_the_session_cookie_is_httponly_strict_and_a_forged_one_is_refused(gw):
    with httpx.Client(base_url=gw.base_url) as client:
        token = re.search(r'name="login_token" value="([^"]+)"', client.get("/console/login").text).group(1)
        answer = client.post("/console/login", data={"id": VIEWER[0], "password": VIEWER[1], "login_token": token})
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
        assert client.get("/console/").status_code == 200
        # The viewer's cookie with its payload rewritten to name the operator: its MAC no longer matches.
        payload, mac = client.cookies["gw_console"].split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["sub"] = OPERATOR[0]
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + "." + mac
    with httpx.Client(base_url=gw.base_url, cookies={"gw_console": forged}) as forger:
        assert forger.get("/console/").status_code == 303
    with httpx.Client(base_url=gw.base_url, cookies={"gw_console": "e30.AAAA"}) as forger:
        assert forger.get("/console/").status_code == 303


def test_sign_in_without_the_form_token_is_refused(gw):
    with httpx.Client(base_url=gw.base_url) as client:
        answer = client.post("/console/login", data={"id": OPERATOR[0], "password": OPERATOR[1]})
        assert answer.status_code == 403 and "gw_console" not in answer.cookies


def test_actions_without_or_with_a_wrong_csrf_token_change_nothing(gw):
    case_id = dead_lettered_case(gw)
    client = sign_in(gw, OPERATOR)
    page = client.get(f"/console/cases/{case_id}")
    assert page.status_code == 200 and "确认重放" in page.text
    entries_before = gw.redis().llen(keys.audit(case_id))
    for data in ({"matter": "employee_medical_enrolment"},
                 {"matter": "employee_medical_enrolment", "csrf": "not-the-token"}):
        assert client.post(f"/console/cases/{case_id}/replay", data=data).status_code == 403
        assert client.post(f"/console/cases/{case_id}/cancel", data={**data, "reason": "x" * 4}).status_code == 403
        assert client.post(f"/console/cases/{case_id}/reveal", data={**data, "reason": "x" * 4}).status_code == 403
    assert gw.case(case_id)["tasks"][0]["status"] == "failed"
    assert dead_letter_count(gw.redis()) == 1
    assert gw.redis().llen(keys.audit(case_id)) == entries_before
    # Another session's token is no better: tokens are bound to their session.
    other = sign_in(gw, OPERATOR)
    other_token = csrf_of(other.get(f"/console/cases/{case_id}").text)
    assert other_token != csrf_of(page.text)
    assert client.post(f"/console/cases/{case_id}/replay",
                       data={"matter": "employee_medical_enrolment", "csrf": other_token}).status_code == 403
    assert dead_letter_count(gw.redis()) == 1


def test_a_viewer_cannot_replay_cancel_or_unmask_and_sees_masked_fields(gw):
    case_id = dead_lettered_case(gw)
    viewer = sign_in(gw, VIEWER)
    page = viewer.get(f"/console/cases/{case_id}").text
    assert "确认重放" not in page and "撤销案件" not in page and "查看明文" not in page
    assert "韦*例" in page and "139****5678" in page and "4501**********" in page
    assert "韦样例" not in page and "13912345678" not in page
    token = csrf_of(page)
    for action, data in (("replay", {"matter": "employee_medical_enrolment"}), ("cancel", {"reason": "test"}),
                         ("reveal", {"reason": "test"})):
        assert viewer.post(f"/console/cases/{case_id}/{action}", data={**data, "csrf": token}).status_code == 403
    assert gw.case(case_id)["tasks"][0]["status"] == "failed" and dead_letter_count(gw.redis()) == 1


def test_an_operator_unmasks_with_a_reason_and_the_view_is_on_the_audit_chain(gw):
    case_id = dead_lettered_case(gw)
    client = sign_in(gw, OPERATOR)
    token = csrf_of(client.get(f"/console/cases/{case_id}").text)
    assert client.post(f"/console/cases/{case_id}/reveal", data={"csrf": token, "reason": ""}).status_code == 422
    shown = client.post(f"/console/cases/{case_id}/reveal", data={"csrf": token, "reason": "申请人来电核实"})
    assert shown.status_code == 200 and "韦样例" in shown.text and "13912345678" in shown.text
    timeline = client.get(f"/console/cases/{case_id}").text
    assert "console.pii_revealed" in timeline and f"console:{OPERATOR[0]}" in timeline and "申请人来电核实" in timeline
    assert "韦样例" not in timeline  # the next view is masked again


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_an_operator_replays_a_dead_letter_and_cancels_with_a_reason_both_audited(gw):
    case_id = dead_lettered_case(gw)
    gw.faults("medical", error_rate=0.0)
    client = sign_in(gw, OPERATOR)
    token = csrf_of(client.get(f"/console/cases/{case_id}").text)
    answer = client.post(f"/console/cases/{case_id}/replay",
                         data={"csrf": token, "matter": "employee_medical_enrolment"})
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=replayed")
    assert gw.wait_terminal(case_id)["tasks"][0]["status"] == "completed"
    assert dead_letter_count(gw.redis()) == 0
    page = client.get(f"/console/cases/{case_id}").text
    assert f"console:{OPERATOR[0]}" in page and "replayed from the DLQ" in page and "完整 intact" in page
    # A case still open (its tax declaration waits for the applicant, who never pays): cancelled with a reason,
    # through the state machine, on the audit chain.
    waiting = gw.submit(awaiting_payment_case()).json()["id"]
    gw.wait(waiting, lambda c: any(t["status"] == "awaiting_payment" for t in c["tasks"]))
    answer = client.post(f"/console/cases/{waiting}/cancel", data={"csrf": token, "reason": "申请人撤回"})
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=cancelled")
    tasks = {t["matter"]: t["status"] for t in gw.case(waiting)["tasks"]}
    assert tasks["contribution_declaration"] == "cancelled"
    page = client.get(f"/console/cases/{waiting}").text
    assert "申请人撤回" in page and f"console:{OPERATOR[0]}" in page


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_a_case_is_found_by_the_platform_idempotency_key(gw):
    case_id = gw.submit(medical_case(),
                        key="platform-key-1").json()["id"]
    client = sign_in(gw, VIEWER)
    found = client.get("/console/", params={"app_id": "test-platform", "key": "platform-key-1"})
    assert found.status_code == 303 and found.headers["location"] == f"/console/cases/{case_id}"
    missing = client.get("/console/", params={"app_id": "test-platform", "key": "other"})
    assert missing.status_code == 200 and "未找到案件" in missing.text


def test_the_health_page_lists_adapters_queues_and_overdue_cases(gw):
    client = sign_in(gw, VIEWER)
    page = client.get("/console/health").text
    for name in ("medical", "hrss", "tax", "housing_fund", "e_license"):
        assert f'data-testid="adapter-{name}"' in page
    fragment = client.get("/console/health/fragment")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-testid="depth-dlq">0<' in fragment.text


def test_without_the_demo_caller_the_one_form_has_no_submit_and_a_post_is_refused(gw):
    client = sign_in(gw, OPERATOR)
    form = client.get("/console/form/guangxi").text
    assert 'data-testid="submit-form"' not in form and "仅在开发模式" in form
    token = csrf_of(form)
    for data in ({"csrf": token}, {}):
        refused = client.post("/console/form/guangxi", data={**data, "matters": "employee_pension_enrolment"})
        assert refused.status_code == 403
    assert not list(gw.redis().scan_iter("gw:*:case"))
