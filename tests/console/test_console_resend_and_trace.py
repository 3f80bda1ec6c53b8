"""Re-sending an applicant's link (the CLI and the console, one code path), the timeline's trace links, and the one
form's demo submit over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store import keys
from tests.console.support import (
    OPERATOR,
    VIEWER,
    awaiting_payment_case,
    csrf_of,
    medical_case,
    sign_in,
    start_console_gateway,
    start_demo_console_gateway,
)
from tests.support.harness import RunningGateway, applicant

GATEWAY = str(Path(sys.executable).parent / "gateway")
TRACE_URL = "http://traces.example:16686/trace/{trace_id}"
WAITING = "contribution_declaration"


@pytest.fixture
def gw(redis_url, tmp_path):
    gateway = start_console_gateway(tmp_path, redis_url, console_trace_url=TRACE_URL)
    yield gateway
    gateway.stop()


def reminders(gw: RunningGateway) -> list[dict[str, Any]]:
    messages = httpx.get(gw.mock("sms") + "/_mock/messages").json()["messages"]
    return [m for m in messages if m["template"] == "task.step_reminder"]


def wait_for_reminders(gw: RunningGateway, count: int) -> list[dict[str, Any]]:
    """The SMS go out through the outbox, asynchronously."""
    deadline = time.monotonic() + 15
    while len(found := reminders(gw)) < count:
        assert time.monotonic() < deadline, f"{count} reminder SMS did not arrive: {found}"
        time.sleep(0.1)
    return found


def test_a_fresh_link_is_sent_from_the_cli_and_from_the_console_audited_and_refused_to_a_viewer(gw, tmp_path):
    case_id = gw.submit(awaiting_payment_case()).json()["id"]
    gw.wait(case_id, lambda c: any(t["status"] == "awaiting_payment" for t in c["tasks"]))
    audit = keys.audit(case_id)
    # The CLI.
    env = dict(os.environ, GATEWAY_REDIS_URL=gw.redis_url, GATEWAY_VAR_DIR=str(tmp_path / "var"),
               GATEWAY_API_PORT=str(gw.settings.api_port))
    sent = subprocess.run([GATEWAY, "cases", "resend-link", case_id, WAITING, "--reason", "短信未收到"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    first = wait_for_reminders(gw, 1)
    assert "/h5/" in first[0]["text"] and "缴费" in first[0]["text"]
    # Nothing waits on the medical enrolment: refused, nothing sent.
    nothing = subprocess.run([GATEWAY, "cases", "resend-link", case_id, "employee_medical_enrolment", "--reason",
                              "不应发送"], env=env, capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 1 and "nothing sent" in nothing.stderr

    # A viewer sees no re-send and is refused; without the session's CSRF token an operator is refused too.
    viewer = sign_in(gw, VIEWER)
    viewer_page = viewer.get(f"/console/cases/{case_id}").text
    assert "重发链接" not in viewer_page
    entries = gw.redis().llen(audit)
    refused = viewer.post(f"/console/cases/{case_id}/resend-link",
                          data={"csrf": csrf_of(viewer_page), "matter": WAITING, "reason": "查看员"})
    assert refused.status_code == 403
    operator = sign_in(gw, OPERATOR)
    page = operator.get(f"/console/cases/{case_id}").text
    assert "重发链接" in page and 'data-testid="confirm-resend"' in page
    for token in (None, "not-the-token"):
        data = {"matter": WAITING, "reason": "申请人来电"} | ({"csrf": token} if token else {})
        assert operator.post(f"/console/cases/{case_id}/resend-link", data=data).status_code == 403
    assert operator.post(f"/console/cases/{case_id}/resend-link",
                         data={"csrf": csrf_of(page), "matter": WAITING, "reason": ""}).status_code == 422
    assert gw.redis().llen(audit) == entries

    # The operator, with a reason: a second fresh link, on the audit chain under the operator's id.
    answer = operator.post(f"/console/cases/{case_id}/resend-link",
                           data={"csrf": csrf_of(page), "matter": WAITING, "reason": "申请人来电，链接已失效"})
    assert answer.status_code == 303 and answer.headers["location"].endswith("done=resent")
    both = wait_for_reminders(gw, 2)
    links = [text[text.index("http"):].split()[0] for text in (m["text"] for m in both)]
    assert len(set(links)) == 2  # each re-send is a fresh single-use link
    assert gw.redis().llen(audit) == entries + 1
    shown = operator.get(f"/console/cases/{case_id}?done=resent").text
    assert "已向申请人重发链接" in shown and "办理提醒" in shown
    assert "console:op-wei" in shown and "申请人来电，链接已失效" in shown and "cli" in shown
    assert "/h5/" not in shown  # the links are the applicant's bearer tokens: never on the page
    # The platform hears of each re-send (the webhook), with who sent it and why.
    events = gw.wait_events(lambda e: sum(x["type"] == "task.step_reminder" for x in e) >= 2)
    resends = [(e["actor"], e["reason"]) for e in events if e["type"] == "task.step_reminder"]
    assert resends == [("cli", "短信未收到"), (f"console:{OPERATOR[0]}", "申请人来电，链接已失效")]
    # The task still waits, with its planned reminders and expiry as they were.
    assert {t["matter"]: t["status"] for t in gw.case(case_id)["tasks"]}[WAITING] == "awaiting_payment"


def test_the_timeline_links_each_change_to_its_trace_and_the_page_refreshes_in_place(gw):
    case_id = gw.submit(medical_case()).json()["id"]
    gw.wait_terminal(case_id)
    # A change made in a trace carries its trace id beside the MACed part of its audit entry (as under OTel).
    audit = keys.audit(case_id)
    entry = json.loads(gw.redis().lindex(audit, 0))
    entry["trace_id"] = "4bf92f3577b34da6a3ce929d0e0e4736"
    gw.redis().lset(audit, 0, json.dumps(entry))
    client = sign_in(gw, VIEWER)
    page = client.get(f"/console/cases/{case_id}").text
    assert ('<a href="http://traces.example:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736" data-testid="trace-link">'
            in page)
    assert page.count('data-testid="trace-link"') == 1  # the other changes happened outside any trace
    assert "完整 intact" in page  # the trace id is a pointer, not evidence: the chain still verifies
    assert f'data-refresh="/console/cases/{case_id}/fragment"' in page
    fragment = client.get(f"/console/cases/{case_id}/fragment")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-testid="case-status">已办结' in fragment.text and "4bf92f3577b34da6a3ce929d0e0e4736" in fragment.text
    with httpx.Client(base_url=gw.base_url) as nobody:
        assert nobody.get(f"/console/cases/{case_id}/fragment").status_code == 401


def test_the_demo_submit_needs_the_session_token_and_a_form_sent_twice_makes_one_case(redis_url, tmp_path):
    gw = start_demo_console_gateway(tmp_path, redis_url)
    try:
        client = sign_in(gw, VIEWER)
        form = client.get("/console/form/guangxi").text
        assert 'data-testid="submit-form"' in form
        key = re.search(r'name="idempotency_key" value="([^"]+)"', form)
        assert key is not None
        person = applicant()
        data = {"idempotency_key": key.group(1), "matters": "employee_pension_enrolment",
                **{f"applicant.{name}": person[name] for name in ("name", "id_number", "phone")}}
        assert client.post("/console/form/guangxi", data=data).status_code == 403
        assert client.post("/console/form/guangxi", data=data | {"csrf": "forged"}).status_code == 403
        assert not list(gw.redis().scan_iter("gw:*:case"))
        first = client.post("/console/form/guangxi", data=data | {"csrf": csrf_of(form)})
        again = client.post("/console/form/guangxi", data=data | {"csrf": csrf_of(form)})  # a double click
        assert first.status_code == again.status_code == 303
        assert first.headers["location"] == again.headers["location"]
        assert first.headers["location"].startswith("/console/cases/")
        assert len(list(gw.redis().scan_iter("gw:*:case"))) == 1
    finally:
        gw.stop()


def test_the_cli_cancels_what_is_left_of_a_case_with_a_reason_on_the_audit_chain(gw, tmp_path):
    case_id = gw.submit(awaiting_payment_case()).json()["id"]
    gw.wait(case_id, lambda c: any(t["status"] == "awaiting_payment" for t in c["tasks"]))
    env = dict(os.environ, GATEWAY_REDIS_URL=gw.redis_url, GATEWAY_VAR_DIR=str(tmp_path / "var"),
               GATEWAY_API_PORT=str(gw.settings.api_port))
    no_reason = subprocess.run([GATEWAY, "cases", "cancel", case_id, "--reason", " "], env=env,
                               capture_output=True, text=True, timeout=120)
    assert no_reason.returncode == 2
    assert all(t["status"] != "cancelled" for t in gw.case(case_id)["tasks"])  # refused: nothing changed
    done = subprocess.run([GATEWAY, "cases", "cancel", case_id, "--reason", "申请人撤回"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert WAITING in done.stdout
    assert {t["matter"]: t["status"] for t in gw.case(case_id)["tasks"]}[WAITING] == "cancelled"
    page = sign_in(gw, VIEWER).get(f"/console/cases/{case_id}").text  # the timeline, read off the audit chain
    assert "申请人撤回" in page and ">cli<" in page and "完整 intact" in page
    again = subprocess.run([GATEWAY, "cases", "cancel", case_id, "--reason", "再次撤回"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
