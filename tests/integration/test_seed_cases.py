"""Whole cases for the people the seeds accept (issue 9): through the gateway (API, worker, real mock departments),
each written from the seed sentence that accepts them. The household register retrieved as an e-license decides
户籍 over what the applicant declared.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.store import keys
from tests.support.harness import RunningGateway, applicant, start_gateway

RESIDENT_PENSION = {"contribution_tier": 100, "is_student": False, "public_staff": False,
                    "old_rural_pension": False, "other_pension": False}
RESIDENT_MEDICAL = {"community": "新竹社区", "employed": False}
FOREIGNER = "94584019850314001X"  # 9 + 45 (Guangxi) + 840 + 1985-03-14 + 001 + the GB 11643 check character


@pytest.fixture
def gw(redis_url, tmp_path):
    gateway = start_gateway(tmp_path, redis_url, applicant_delay="0.2")
    yield gateway
    gateway.stop()


def submit(gw: RunningGateway, matter: str, section: dict[str, Any], person: dict[str, Any]) -> str:
    body = {"profile": "guangxi", "channel": "online", "applicant": person, "matters": [matter],
            "sections": {matter: section}, "delivery": "online"}
    response = gw.submit(body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def received(gw: RunningGateway, department: str, case_id: str, matter: str) -> list[dict[str, Any]]:
    """What the department logged for the task's request id."""
    with gw.redis() as client:
        request_id = str(client.hget(keys.task(case_id, matter), "request_id"))
    response = httpx.get(gw.mock(department) + "/_mock/requests", params={"request_id": request_id})
    response.raise_for_status()
    return [entry["body"] for entry in response.json()["requests"]]


def test_a_61_year_old_rural_man_enrols_in_the_resident_pension(gw):
    """四.3(2) 城乡居民养老保险参保登记: 「年满16周岁（不含在校学生）…在户籍地参加城乡居民养老保险」 — no upper
    age: a man of 61, past the employees' retirement age, enrols."""
    person = applicant(division="450103", birth="19650315", sequence=123)
    case = gw.wait_terminal(submit(gw, "resident_pension_enrolment", RESIDENT_PENSION, person), timeout=60)
    assert [(t["matter"], t["status"]) for t in case["tasks"]] == [("resident_pension_enrolment", "completed")]


def test_a_moved_in_applicant_enrols_online_with_the_household_the_register_holds(gw):
    """四.3(2): 「具有广西壮族自治区户籍…在户籍地参加」: 户籍 is where the household register says, not where the ID
    number was issued — 440304 (深圳) with sequence 5xx is registered in 450103 (南宁市青秀区)."""
    person = applicant(division="440304", birth="19900307", sequence=523, household_division_code="450103")
    case_id = submit(gw, "resident_medical_enrolment", RESIDENT_MEDICAL, person)
    case = gw.wait_terminal(case_id, timeout=60)
    assert case["documents"]["status"] == "found"
    assert [(t["matter"], t["status"]) for t in case["tasks"]] == [("resident_medical_enrolment", "completed")]
    sent = received(gw, "medical", case_id, "resident_medical_enrolment")
    assert sent and "450103" in str(sent[0])  # registered at the household division the register holds


def test_the_household_register_decides_over_a_declaration_it_contradicts(gw):
    """四.3(2): 「具有广西壮族自治区户籍」 is checked against the 居民户口簿 the gateway retrieves (证件免交): someone
    registered in 440304 who declares a Guangxi household is refused with the reason, and nothing is sent."""
    person = applicant(division="440304", birth="19900307", sequence=123, household_division_code="450103")
    case_id = submit(gw, "resident_pension_enrolment", RESIDENT_PENSION, person)
    case = gw.wait_terminal(case_id, timeout=60)
    task = case["tasks"][0]
    assert task["status"] == "rejected" and "户籍" in task["reason"], task
    assert received(gw, "hrss", case_id, "resident_pension_enrolment") == []


def test_a_foreigner_enrols_in_resident_medical(gw):
    """四.4(1): 「在广西居住且办理外国人永久居留证的未就业外国人申请参加城乡居民基本医疗保险」."""
    person = {"name": "John Smith", "id_type": "foreign_permanent_residence", "id_number": FOREIGNER, "sex": "male",
              "phone": "13912345678", "residence_division_code": "450103"}
    case = gw.wait_terminal(submit(gw, "resident_medical_enrolment", RESIDENT_MEDICAL, person), timeout=60)
    assert [(t["matter"], t["status"]) for t in case["tasks"]] == [("resident_medical_enrolment", "completed")]
