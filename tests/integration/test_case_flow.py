"""Whole cases through the gateway: real Redis (both kinds), real mock departments over HTTP and SOAP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.forms import filled_sections
from tests.support.harness import RunningGateway, applicant, start_gateway


@pytest.fixture
def gw(redis_url, tmp_path):
    gateway = start_gateway(tmp_path, redis_url, applicant_delay="0.2")
    yield gateway
    gateway.stop()


def application(gw: RunningGateway, profile: str, matters: list[str], person: dict[str, Any],
                **extra: Any) -> dict[str, Any]:
    """Sections filled from the catalogue's JSON Schemas the way a generic form renderer would."""
    sections = filled_sections(gw.client.profile(profile).json()["matters"], matters)
    body = {"profile": profile, "channel": "online", "applicant": person, "matters": matters,
            "sections": sections, "delivery": "online"}
    body.update(extra)
    return body


def by_matter(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["matter"]: t for t in case["tasks"]}


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_employee_medical_enrolment_completes_and_the_platform_hears_every_change(gw):
    response = gw.submit(application(gw, "guangxi", ["employee_medical_enrolment"], applicant()))
    assert response.status_code == 202, response.text
    case = gw.wait_terminal(response.json()["id"])
    task = case["tasks"][0]
    assert case["status"] == "completed"
    assert task["status"] == "completed" and task["native_status"] == "1" and task["department"] == "medical"
    assert gw.stats("medical")["registrations"] == 1
    events = gw.wait_events(lambda es: any(e["case_id"] == case["id"] and e.get("status") == "completed" for e in es))
    mine = [e for e in events if e["case_id"] == case["id"]]
    assert [e["seq"] for e in mine] == sorted(e["seq"] for e in mine)
    assert len({e["event_id"] for e in mine}) == len(mine)
    assert [e["status"] for e in mine if e["type"] == "task.status_changed"][-1] == "completed"
    metrics = httpx.get(gw.base_url + "/metrics").text
    assert 'gateway_department_calls_total{adapter="medical",operation="employee_medical_enrolment",outcome="ok"}' \
        in metrics
    sms = httpx.get(gw.mock("sms") + "/_mock/messages").json()["messages"]
    assert any("灵活就业人员医疗保险参保登记" in m["text"] and "已办结" in m["text"] for m in sms), sms


def test_a_department_refusal_is_a_rejection_with_its_reason(gw):
    already_enrolled = applicant(sequence=127)
    case_id = gw.submit(application(gw, "guangxi", ["employee_medical_enrolment"], already_enrolled)).json()["id"]
    case = gw.wait_terminal(case_id)
    task = case["tasks"][0]
    assert case["status"] == "rejected"
    assert task["status"] == "rejected" and task["native_status"] == "E1001" and "职工基本医疗保险" in task["reason"]


GUANGXI_ALL_DEPARTMENTS = ["archive_transfer", "employee_pension_enrolment", "social_security_card",
                           "employee_medical_enrolment", "contribution_declaration"]


@pytest.mark.cluster  # a key flow: also on the Redis Cluster fixture
def test_guangxi_case_reaches_every_department_and_completes(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, applicant_delay="0.2")
    try:
        body = application(gw, "guangxi", GUANGXI_ALL_DEPARTMENTS, applicant())
        response = gw.submit(body)
        assert response.status_code == 202, response.text
        case = gw.wait_terminal(response.json()["id"], timeout=60)
        tasks = by_matter(case)
        assert {m: t["status"] for m, t in tasks.items()} == dict.fromkeys(GUANGXI_ALL_DEPARTMENTS, "completed")
        assert case["status"] == "completed"
        assert tasks["social_security_card"]["links"]["photo"].startswith(gw.base_url + "/h5/")
        assert tasks["contribution_declaration"]["links"]["payment"].startswith(gw.base_url + "/h5/")
        for department in ("hrss", "medical", "tax"):
            assert gw.stats(department)["registrations"] >= 1
        sms = httpx.get(gw.mock("sms") + "/_mock/messages").json()["messages"]
        assert any("/h5/" in m["text"] for m in sms)
        assert case["documents"]["status"] == "found"
    finally:
        gw.stop()


def test_jiujiang_case_completes_after_payments_and_gets_the_certificate(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url, applicant_delay="0.2")
    try:
        matters = ["employment_registration", "employee_pension_enrolment", "employee_medical_enrolment",
                   "housing_fund_account", "contribution_declaration"]
        person = applicant(division="360402", birth="19880202", sequence=131)
        response = gw.submit(application(gw, "jiujiang", matters, person))
        assert response.status_code == 202, response.text
        case_id = response.json()["id"]
        case = gw.wait(case_id, lambda c: bool(c["certificates"]), timeout=60)
        assert {t["status"] for t in case["tasks"]} == {"completed"}
        certificate = case["certificates"][0]
        assert certificate["type"] == "employment_entrepreneurship_certificate"
        assert certificate["identifier"].startswith("1.2.156.3005.2.") and certificate["issued_at"]
        for department in ("hrss", "medical", "tax", "housing_fund", "e_license"):
            assert gw.stats(department)["registrations"] >= 1, department
    finally:
        gw.stop()


def test_a_person_pays_through_the_single_use_link_and_the_callback_completes_the_declaration(redis_url, tmp_path):
    gw = start_gateway(tmp_path, redis_url)  # no simulated applicant: this test is the person with the phone
    try:
        person = applicant(division="360402", birth="19880202", sequence=151)
        matters = ["employee_medical_enrolment", "contribution_declaration"]
        case_id = gw.submit(application(gw, "jiujiang", matters, person)).json()["id"]
        case = gw.wait(case_id, lambda c: by_matter(c)["contribution_declaration"]["status"] == "awaiting_payment")
        link = by_matter(case)["contribution_declaration"]["links"]["payment"]
        deadline = time.monotonic() + 10  # the SMS leaves through the outbox a moment after the task moved
        while True:
            sms = httpx.get(gw.mock("sms") + "/_mock/messages", params={"phone": person["phone"]}).json()["messages"]
            if any(link in m["text"] for m in sms) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert any(link in m["text"] for m in sms)  # the applicant got exactly this link by SMS
        token = link.rsplit("/", 1)[1]
        forged = f"{gw.base_url}/h5/{token[:-4]}{'AAAA' if not token.endswith('AAAA') else 'BBBB'}"
        assert httpx.get(forged).status_code == 403
        opened = httpx.get(link)
        assert opened.status_code == 302 and opened.headers["location"].startswith(gw.mock("tax") + "/h5/pay/")
        again = httpx.get(link)  # a payment link opens once: a forwarded SMS leads nowhere
        assert again.status_code == 403 and again.json()["errors"][0]["code"] == "link.invalid"
        page = httpx.get(opened.headers["location"])
        assert page.status_code == 200 and "缴费" in page.text
        assert httpx.post(opened.headers["location"] + "/confirm").status_code == 200
        done = gw.wait_terminal(case_id)
        declaration = by_matter(done)["contribution_declaration"]
        assert declaration["status"] == "completed" and declaration["native_status"] == "paid"
    finally:
        gw.stop()


def test_a_region_added_as_a_profile_file_alone_takes_cases(redis_url, tmp_path):
    """A third region (tests/fixtures/profiles/demo_city.yaml): no code change, just the file in the profiles folder."""
    import shutil

    repo = Path(__file__).resolve().parents[2]
    profiles = tmp_path / "profiles"
    shutil.copytree(repo / "profiles", profiles)
    shutil.copy(repo / "tests" / "fixtures" / "profiles" / "demo_city.yaml", profiles)
    gw = start_gateway(tmp_path, redis_url, applicant_delay="0.2", profiles_dir=profiles)
    try:
        assert "demo_city" in {p["code"] for p in gw.client.profiles().json()["profiles"]}
        person = applicant(division="330106", birth="19850303", sequence=171)
        body = application(gw, "demo_city", ["employee_pension_enrolment", "contribution_declaration"], person)
        response = gw.submit(body)
        assert response.status_code == 202, response.text
        case = gw.wait_terminal(response.json()["id"], timeout=60)
        assert {t["matter"]: t["status"] for t in case["tasks"]} == {
            "employee_pension_enrolment": "completed", "contribution_declaration": "completed"}
    finally:
        gw.stop()


def test_e_licenses_under_another_name_reject_the_case_with_the_reason(gw):
    renamed = applicant(sequence=181, name="改名者")  # the licences carry the registered name: a mismatch
    case_id = gw.submit(application(gw, "guangxi", ["employee_medical_enrolment"], renamed)).json()["id"]
    case = gw.wait_terminal(case_id)
    task = case["tasks"][0]
    assert case["documents"]["status"] == "mismatch" and case["status"] == "rejected"
    assert task["status"] == "rejected" and "电子证照" in task["reason"]
    assert gw.stats("medical")["received"] == 0  # nothing was sent on data the licences contradict
