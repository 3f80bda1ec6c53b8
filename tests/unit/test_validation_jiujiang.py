"""Jiujiang application rules, table-driven from seed 000 (三 办理事项及受理条件, 附件3 表单, 附件5 材料)."""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.identity_numbers import check_character
from gateway.domain.materials import materials_for
from gateway.domain.validation import validate_application
from gateway.profiles.loader import ProfileRegistry

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
TODAY = datetime.date(2026, 11, 23)

SECTIONS: dict[str, dict[str, Any]] = {
    "employment_registration": {"employment_type": "flexible", "employment_start_date": "2020-01-02"},
    "employee_pension_enrolment": {"insured_place": "360403", "contribution_tier": 100, "insured_elsewhere": False},
    "employee_medical_enrolment": {
        "insured_place": "360403",
        "contribution_tier": "combined_accounts",
        "insured_elsewhere": False,
    },
    "housing_fund_account": {
        "collection_point": "360400",
        "monthly_amount": 600,
        "has_employment_contract": False,
        "insured_elsewhere": False,
        "income_and_credit": True,
        "deposit_commitment": True,
    },
}
ALL = [
    "employment_registration",
    "employee_pension_enrolment",
    "employee_medical_enrolment",
    "housing_fund_account",
    "contribution_declaration",
]


def id_number(birth: str, sequence: str = "123", division: str = "360403") -> str:
    first17 = division + birth + sequence
    return first17 + check_character(first17)


def body(*matters: str, birth: str = "19900307", sequence: str = "123", **changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "profile": "jiujiang",
        "channel": "online",
        "applicant": {
            "name": "陶潜",
            "id_type": "resident_id",
            "id_number": id_number(birth, sequence),
            "phone": "13912345678",
            "household_division_code": "360403",
        },
        "matters": list(matters),
        "sections": {m: copy.deepcopy(SECTIONS[m]) for m in matters if m in SECTIONS},
        "delivery": "online",
    }
    result.update(changes)
    return result


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load_dir(PROFILES)


def codes(registry, data, today=TODAY) -> list[tuple[str, str]]:
    return [(e.code, e.field) for e in validate_application(data, registry, today=today).errors]


def test_all_five_matters_together(registry):
    outcome = validate_application(body(*ALL), registry, today=TODAY)
    assert outcome.errors == [] and outcome.application is not None
    assert outcome.application.matters == ALL


def test_household_registration_is_not_required(registry):
    data = body("employee_pension_enrolment")
    data["applicant"]["id_number"] = id_number("19900307", division="450103")
    assert codes(registry, data) == []


def test_declaration_needs_an_enrolment(registry):
    assert codes(registry, body("contribution_declaration")) == [("matters.prerequisite_missing", "matters.0")]
    assert codes(registry, body("employment_registration", "housing_fund_account", "contribution_declaration")) == [
        ("matters.prerequisite_missing", "matters.2")
    ]
    assert codes(registry, body("employee_medical_enrolment", "contribution_declaration")) == []
    held = body(
        "contribution_declaration",
        sections={"contribution_declaration": {"already_enrolled": ["employee_pension_enrolment"]}},
    )
    assert codes(registry, held) == []


@pytest.mark.parametrize(
    ("birth", "sequence", "before", "on"),
    [
        ("19651215", "123", datetime.date(2026, 2, 28), datetime.date(2026, 3, 1)),  # man: 2026-03
        ("19710415", "124", datetime.date(2026, 7, 31), datetime.date(2026, 8, 1)),  # woman (55): 2026-08
    ],
)
@pytest.mark.parametrize(
    "matter",
    ["employment_registration", "employee_pension_enrolment", "employee_medical_enrolment", "housing_fund_account"],
)
def test_every_matter_is_for_people_under_retirement_age(registry, matter, birth, sequence, before, on):
    data = body(matter, birth=birth, sequence=sequence)
    assert codes(registry, data, today=before) == []
    assert codes(registry, data, today=on) == [("applicant.age.over_retirement", "applicant.id_number")]


def test_housing_fund_from_eighteen(registry):
    data = body("housing_fund_account", birth="20081123")
    assert codes(registry, data, today=datetime.date(2026, 11, 23)) == []
    assert codes(registry, data, today=datetime.date(2026, 11, 22)) == [
        ("applicant.age.under_minimum", "applicant.id_number")
    ]
    # the pension has no minimum in the seed
    assert codes(registry, body("employee_pension_enrolment", birth="20101123")) == []


@pytest.mark.parametrize(
    ("matter", "field", "value", "expected"),
    [
        ("housing_fund_account", "has_employment_contract", True, "eligibility.employment_relation"),
        ("housing_fund_account", "insured_elsewhere", True, "eligibility.insured_elsewhere"),
        ("employee_pension_enrolment", "insured_elsewhere", True, "eligibility.insured_elsewhere"),
        ("housing_fund_account", "deposit_commitment", False, "section.field.invalid"),
        ("housing_fund_account", "monthly_amount", 50, "section.field.invalid"),
        ("employee_medical_enrolment", "insured_place", "450100", "section.field.invalid"),
        ("employment_registration", "employment_start_date", "2026-12-01", "section.field.invalid"),
    ],
)
def test_section_statements_and_values(registry, matter, field, value, expected):
    data = body(matter)
    data["sections"][matter][field] = value
    assert codes(registry, data) == [(expected, f"sections.{matter}.{field}")]


def test_online_materials_are_all_e_licenses(registry):
    app = validate_application(body(*ALL), registry, today=TODAY).application
    assert app is not None
    materials = materials_for(registry.get("jiujiang"), app)
    required = [m for m in materials if m["required"]]
    assert {m["code"] for m in required} == {"id_card", "household_register"}
    assert all(m["upload"] is False for m in required)  # 五(二): 身份证、户口簿 系统获取
