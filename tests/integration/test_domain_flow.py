"""Whole cases written from the seeds: choices and materials reach the departments, steps follow the region's order.

What arrived at a department is read back from the mock's own request log (`GET /_mock/requests?request_id=`), so
each test sees the request as the department parsed it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from typing import Any

import httpx
import pytest

from adapters.e_license.adapter import CERTIFICATE_TYPES
from gateway.store import keys
from mocks.e_license.app import citizen
from tests.support.harness import RunningGateway, applicant, start_gateway


@pytest.fixture
def gw(redis_url, tmp_path):
    gateway = start_gateway(tmp_path, redis_url, applicant_delay="0.2")
    yield gateway
    gateway.stop()


def by_matter(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["matter"]: t for t in case["tasks"]}


def received(gw: RunningGateway, department: str, request_id: str) -> list[dict[str, Any]]:
    """The bodies the department logged for this request id."""
    response = httpx.get(gw.mock(department) + "/_mock/requests", params={"request_id": request_id})
    response.raise_for_status()
    return [entry["body"] for entry in response.json()["requests"]]


def request_id_of(gw: RunningGateway, case_id: str, matter: str) -> str:
    """The id the gateway chose for the task's department request (stored with the task before the first call)."""
    with gw.redis() as client:
        return str(client.hget(keys.task(case_id, matter), "request_id"))


def days_ago(days: int) -> str:
    return (dt.date.today() - dt.timedelta(days=days)).isoformat()


def jiujiang_sections(tier: int) -> dict[str, dict[str, Any]]:
    return {
        "employment_registration": {"employment_type": "flexible", "employment_start_date": days_ago(3)},
        "employee_pension_enrolment": {"insured_place": "360403", "contribution_tier": tier,
                                       "insured_elsewhere": False},
        "employee_medical_enrolment": {"insured_place": "360403", "contribution_tier": "pooling_only",
                                       "insured_elsewhere": False},
    }


def attachment(material: str, data: bytes, filename: str, content_type: str = "application/pdf") -> dict[str, Any]:
    return {"material": material, "filename": filename, "content_type": content_type,
            "sha256": hashlib.sha256(data).hexdigest(), "data_base64": base64.b64encode(data).decode()}


def test_jiujiang_tier_and_base_reach_hrss_and_tax(gw):
    """附件3: 养老保险 缴存档次 (自行选择); 四(二)2: 电子证照、材料信息通过链条系统同时流转至人社部门、医保部门…

    The tier the applicant chose reaches 人社 with the enrolment, and the declaration declares, per fee type and
    from the month of enrolment, the base that tier stands for (not the floor) and the medical tier chosen.
    """
    matters = ["employee_pension_enrolment", "employee_medical_enrolment", "contribution_declaration"]
    sections = {m: s for m, s in jiujiang_sections(150).items() if m in matters}
    body = {"profile": "jiujiang", "channel": "online", "applicant": applicant("360402", "19880202", 131),
            "matters": matters, "sections": sections, "delivery": "online"}
    response = gw.submit(body)
    assert response.status_code == 202, response.text
    case_id = response.json()["id"]
    gw.wait(case_id, lambda c: by_matter(c)["contribution_declaration"]["status"] in ("awaiting_payment",
                                                                                      "completed"))
    pension = received(gw, "hrss", request_id_of(gw, case_id, "employee_pension_enrolment"))
    assert pension and pension[0]["contributionTier"] == "150" and pension[0]["insuredPlace"] == "360403"
    declaration = received(gw, "tax", request_id_of(gw, case_id, "contribution_declaration"))
    rows = {row["zspmDm"]: row for row in declaration[0]["body"]["sbmx"]}
    month = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    pension_row, medical_row = rows["102100201"], rows["102120201"]
    assert pension_row["jfjs"] == "10200.0"  # 150% of the profile's reference wage (6800), not the 4000 floor
    assert pension_row["skssqq"] == f"{month}-01"
    assert medical_row["zszmDm"] == "pooling_only"


def test_an_archive_transferred_out_carries_its_transfer_letter_to_hrss(gw):
    """五 材料: 如办理档案的接收和转递——流动人员人事档案转出，需提供有人事档案管理资质单位出具的《调档函》。"""
    letter = b"%PDF-1.4 transfer letter of the receiving institution"
    section = {"direction": "out", "archive_from": "南宁市人才服务中心", "archive_to": "柳州市人才服务中心",
               "person_category": "flexible_worker", "is_graduate": False, "transfer_reason": "contract_ended",
               "education": [{"degree": "bachelor", "degree_nature": "full_time", "graduation_date": "2012-06-30",
                              "school": "广西大学"}]}
    body = {"profile": "guangxi", "channel": "online", "applicant": applicant(sequence=133),
            "matters": ["archive_transfer"], "sections": {"archive_transfer": section}, "delivery": "online"}
    refused = gw.submit(body)
    assert refused.status_code == 422
    assert "attachments.required" in {e["code"] for e in refused.json()["errors"]}

    body["attachments"] = [attachment("archive_transfer_letter", letter, "调档函.pdf")]
    response = gw.submit(body)
    assert response.status_code == 202, response.text
    case = gw.wait_terminal(response.json()["id"])
    assert by_matter(case)["archive_transfer"]["status"] == "completed"
    arrived = received(gw, "hrss", request_id_of(gw, case["id"], "archive_transfer"))[0]
    assert arrived["direction"] == "out" and arrived["toOrg"] == "柳州市人才服务中心"
    assert arrived["attachment"] == [{"material": "archive_transfer_letter", "filename": "调档函.pdf",
                                      "contentType": "application/pdf", "sha256": hashlib.sha256(letter).hexdigest(),
                                      "size": len(letter)}]


def test_guangxi_declaration_proceeds_when_the_applicant_is_already_enrolled(redis_url, tmp_path):
    """附件2 须知1: 办理…灵活就业人员养老保险登记…后，才可进行灵活就业人员社会保险费申报.

    An applicant the department refuses as already enrolled (重复参保) holds the enrolment: the declaration follows.
    """
    gw = start_gateway(tmp_path, redis_url)  # nobody pays: the declaration stays awaiting payment
    try:
        row = {"fee_type": "pension", "levy_item": "flexible_pension", "period_start": days_ago(0)[:8] + "01",
               "period_end": days_ago(0), "contribution_base": 5000}
        body = {"profile": "guangxi", "channel": "online", "applicant": applicant(sequence=127),
                "matters": ["employee_pension_enrolment", "contribution_declaration"],
                "sections": {"contribution_declaration": {"rows": [row]}}, "delivery": "online"}
        response = gw.submit(body)
        assert response.status_code == 202, response.text
        case = gw.wait(response.json()["id"],
                       lambda c: by_matter(c)["contribution_declaration"]["status"] not in ("pending", "queued",
                                                                                           "submitted"))
        tasks = by_matter(case)
        assert tasks["employee_pension_enrolment"]["status"] == "rejected"
        assert tasks["employee_pension_enrolment"]["native_status"] == "1001"
        assert tasks["contribution_declaration"]["status"] == "awaiting_payment"
    finally:
        gw.stop()


def test_jiujiang_certificate_follows_payment_and_the_payment_sms_comes_first(gw):
    """四(一)3-4: 业务办理完成后，人社部门、医保部门短信通知申请人在"江西省税务局"公众号平台进行社保缴费…
    申请人缴费完成后，申请人成功参加职工养老保险…自动生成《就业创业证》电子证照。

    The applicant is already enrolled in the employee pension (refused as 重复参保): the declaration still follows,
    and the certificate is issued once the employment registration is complete and the contribution is paid.
    """
    person = applicant("360402", "19880202", 137)
    matters = ["employment_registration", "employee_pension_enrolment", "contribution_declaration"]
    sections = {m: s for m, s in jiujiang_sections(100).items() if m in matters}
    response = gw.submit({"profile": "jiujiang", "channel": "online", "applicant": person, "matters": matters,
                          "sections": sections, "delivery": "online"})
    assert response.status_code == 202, response.text
    case = gw.wait(response.json()["id"], lambda c: bool(c["certificates"]), timeout=60)
    tasks = by_matter(case)
    assert tasks["employment_registration"]["status"] == "completed"
    assert tasks["employee_pension_enrolment"]["native_status"] == "1001"
    assert tasks["contribution_declaration"]["status"] == "completed"  # paid
    deadline = time.monotonic() + 15  # the certificate's SMS leaves through the outbox a moment after the case shows it
    while True:
        texts = [m["text"] for m in httpx.get(gw.mock("sms") + "/_mock/messages",
                                              params={"phone": person["phone"]}).json()["messages"]]
        payment = [i for i, text in enumerate(texts) if "江西省税务局" in text and "缴费" in text]
        certificate = [i for i, text in enumerate(texts) if "《就业创业证》" in text]
        if certificate or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert payment and certificate and payment[0] < certificate[0], texts


def test_resident_medical_reaches_the_department_with_the_registered_ethnicity_and_household_division(gw):
    """四.4(2): 申请人应在户籍地或居住地参保; 附件2 民族: the household register (retrieved as an e-license,
    证件免交、信息预填) gives the ethnicity and the division of the household, which 医保 registers."""
    person = applicant(sequence=101)
    assert citizen(person["id_number"]).ethnicity == "壮"  # the e-license mock's register for this person
    body = {"profile": "guangxi", "channel": "online", "applicant": person, "matters": ["resident_medical_enrolment"],
            "sections": {"resident_medical_enrolment": {"community": "青秀区新竹社区", "employed": False}},
            "delivery": "online"}
    response = gw.submit(body)
    assert response.status_code == 202, response.text
    case = gw.wait_terminal(response.json()["id"])
    assert case["documents"]["status"] == "found"
    data = received(gw, "medical", request_id_of(gw, case["id"], "resident_medical_enrolment"))[0]["input"]["data"]
    assert data["naty"] == "08"  # GB 3304 壮族, not the 汉族 default
    assert data["insu_admdvs"] == "450103"  # the household's division, not the region's 450000


def test_a_certificate_type_the_platform_refuses_is_a_final_refusal_with_its_reason(gw, monkeypatch):
    """四(一)4 「自动生成《就业创业证》电子证照」: the type code of the 《就业创业证》 is a placeholder (the seed
    gives none). When the platform refuses it (E2002 证照类型不在签发目录中) the case says so, the platform hears
    it, and nothing retries for ever."""
    monkeypatch.setitem(CERTIFICATE_TYPES, "employment_entrepreneurship_certificate", "PLACEHOLDER0000XXX001")
    person = applicant("360402", "19880202", 121)
    matters = ["employment_registration"]
    sections = {m: s for m, s in jiujiang_sections(100).items() if m in matters}
    response = gw.submit({"profile": "jiujiang", "channel": "online", "applicant": person, "matters": matters,
                          "sections": sections, "delivery": "online"})
    assert response.status_code == 202, response.text
    case_id = response.json()["id"]
    refused = lambda c: any(w["code"] == "certificate.refused" for w in c["warnings"])  # noqa: E731
    case = gw.wait(case_id, refused, timeout=60)
    assert case["certificates"] == [] and by_matter(case)["employment_registration"]["status"] == "completed"
    events = gw.wait_events(lambda es: any(e["case_id"] == case_id and e["type"] == "case.certificate_refused"
                                           for e in es))
    event = next(e for e in events if e["case_id"] == case_id and e["type"] == "case.certificate_refused")
    assert event["native_status"] == "E2002" and event["reason"]
    with gw.redis() as client:
        request_id = str(client.hget(keys.case(case_id), "certificate_request_id"))
    time.sleep(2)  # a retry would have come by now (the harness's retry cap is 0.2 s)
    assert len(received(gw, "e_license", request_id)) == 1
