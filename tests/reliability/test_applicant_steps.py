"""Applicant steps end: nobody pays, the applicant is reminded by SMS with a fresh link and the step expires; and
after a SIGKILL of the whole `gateway up` the step's timer still fires and the case finishes through a reminder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.client import GatewayClient, mint_demo_assertion
from gateway.store import keys
from mocks.serving import create_mock, free_port, start_in_thread
from tests.support.harness import applicant, start_gateway

GATEWAY = str(Path(sys.executable).parent / "gateway")
REPO = Path(__file__).resolve().parents[2]
DEPOSIT_SECTION = {"collection_point": "360402", "monthly_amount": 500, "has_employment_contract": False,
                   "insured_elsewhere": False, "deposit_commitment": True, "income_and_credit": True}


def deposit_case(person: dict[str, Any]) -> dict[str, Any]:
    """A Jiujiang housing-fund account: opened at once, then the applicant's first deposit behind an H5 link."""
    return {"profile": "jiujiang", "channel": "online", "applicant": person, "matters": ["housing_fund_account"],
            "sections": {"housing_fund_account": DEPOSIT_SECTION}, "delivery": "online"}


def sms_messages(sms_url: str) -> list[dict[str, Any]]:
    return httpx.get(sms_url + "/_mock/messages").json()["messages"]  # type: ignore[no-any-return]


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} not there in {timeout} s"
        time.sleep(0.2)
    return found


def test_a_step_nobody_does_is_reminded_twice_with_fresh_links_then_expires(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, applicant_delay="off", step_reminders_s=[1.0, 2.5], step_expiry_s=5.0)
    try:
        response = gw.submit(deposit_case(applicant(division="360402", birth="19880202", sequence=161)))
        assert response.status_code == 202, response.text
        case_id = response.json()["id"]
        gw.wait(case_id, lambda c: c["tasks"][0]["status"] == "awaiting_payment")
        case = gw.wait(case_id, lambda c: c["tasks"][0]["status"] == "expired", timeout=30)
        task = case["tasks"][0]
        assert case["status"] == "expired"
        assert "缴存" in task["reason"] and "期限" in task["reason"]
        events = gw.wait_events(lambda es: any(e["case_id"] == case_id and e.get("status") == "expired" for e in es))
        mine = [e for e in events if e["case_id"] == case_id]
        reminders = [e for e in mine if e["type"] == "task.step_reminder"]
        assert [(e["reminder"], e["steps"]) for e in reminders] == [(1, ["deposit"]), (2, ["deposit"])]
        expired = [e for e in mine if e.get("status") == "expired"]
        assert len(expired) == 1 and expired[0]["reason"] and expired[0]["matter"] == "housing_fund_account"
        assert [e["seq"] for e in mine] == sorted(e["seq"] for e in mine)
        # Each reminder went to the applicant by SMS, naming the step and the matter, with a gateway link.
        texts = wait_for("the reminder SMS", lambda: [m["text"] for m in sms_messages(gw.mock("sms"))
                                                      if m["template"] == "task.step_reminder"] or None, 10)
        assert len(texts) == 2
        for text, event in zip(texts, reminders, strict=True):
            link = event["links"]["deposit"]
            assert link.startswith(gw.base_url + "/h5/") and link in text
            assert "灵活就业人员住房公积金开户" in text and "缴存" in text
        # The step is over: its links were revoked with it and no longer lead to the department.
        for reminder in reminders:
            closed = httpx.get(reminder["links"]["deposit"], follow_redirects=False)
            assert closed.status_code == 403 and closed.json()["errors"][0]["code"] == "link.invalid"
        assert any("已终止" in m["text"] for m in sms_messages(gw.mock("sms")))
        assert gw.redis().zscore(keys.open_cases(keys.shard_of(case_id)), case_id) is None  # the case settled
    finally:
        gw.stop()


def test_after_a_sigkill_of_everything_the_step_finishes_through_a_reminder(tmp_path):
    """`gateway up` (compressed schedule: first reminder 15 s after the step began) is killed with the deposit link
    sent and nobody paying: API, worker, embedded Redis, the SMS gateway and its applicant, in one SIGKILL.
    Restarted on the same var dir, the step's timer fires and the applicant pays through the reminder's fresh link;
    the first SMS, and whatever the applicant meant to do with it, died with the SMS mock.

    The housing-fund centre is another organisation's system and does not die with the gateway: it runs here, in
    the test, so the account it opened (in its memory, as mocks keep state) is still there to take the deposit."""
    centre = start_in_thread(create_mock("housing_fund"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_"))}
    env.update(GATEWAY_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1",
               GATEWAY_ADAPTERS__HOUSING_FUND__BASE_URL=centre.url)
    base = f"http://127.0.0.1:{port}"

    def up(run: int, applicant_delay: str) -> tuple[subprocess.Popen[bytes], str]:
        log = tmp_path / f"up-{run}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([GATEWAY, "up", "--port", str(port)], cwd=REPO, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       env={**env, "MOCK_APPLICANT_DELAY_S": applicant_delay})

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(base + "/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("gateway up", ready, 90)
        sms = re.search(r"sms=(http://[0-9.:]+)", log.read_text())
        assert sms, log.read_text()
        return process, sms.group(1)

    first, sms_url = up(1, "off")  # nobody pays before the kill
    try:
        caller = re.search(r"demo caller: app_id=(\S+) secret=(\S+)", (tmp_path / "up-1.log").read_text())
        assert caller
        client = GatewayClient(base, caller.group(1), caller.group(2))
        person = applicant(division="360402", birth="19880202", sequence=162)
        key = tmp_path / "var" / "identity" / "demo-idp-key.pem"
        response = client.submit_case(deposit_case(person),
                                      assertion=mint_demo_assertion(key, person["id_number"], person["name"]))
        assert response.status_code == 202, response.text
        case_id = response.json()["id"]
        wait_for("the deposit link by SMS", lambda: any(
            "/h5/" in m["text"] and m["template"] == "task.status_changed" for m in sms_messages(sms_url)), 60)
        assert client.get_case(case_id).json()["tasks"][0]["status"] == "awaiting_payment"
        time.sleep(1.5)  # the embedded Redis writes its AOF every second: what it held a second ago is on disk
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # API, worker, embedded Redis and the mocks, all at once
        first.wait(10)
    assert not [m for m in sms_messages_or_none(sms_url)], "the first run's SMS mock survived the kill"

    second, sms_url = up(2, "1")  # the applicant now acts on what reaches the phone
    try:
        case = wait_for("the case completed", lambda: (c := client.get_case(case_id).json())["status"]
                        == "completed" and c, 90)
        assert case["tasks"][0]["status"] == "completed"
        reminders = {m["msg_id"] for m in sms_messages(sms_url) if m["template"] == "task.step_reminder"}
        assert reminders, sms_messages(sms_url)
        actions = httpx.get(sms_url + "/_mock/applicant").json()["actions"]
        paid = [a for a in actions if a["confirm_status"] == 200]
        assert paid and {a["msg_id"] for a in paid} <= reminders, actions
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, (tmp_path / "up-2.log").read_text()[-2000:]
        centre.stop()


def sms_messages_or_none(sms_url: str) -> list[dict[str, Any]]:
    try:
        return sms_messages(sms_url)
    except httpx.HTTPError:
        return []
