"""Guangxi application rules, table-driven from seed 002 (四 申请须知, 附件2 选办说明, 六 时限)."""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.identity_numbers import check_character
from gateway.domain.validation import validate_application
from gateway.profiles.loader import ProfileRegistry

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
TODAY = datetime.date(2026, 11, 23)

SECTIONS: dict[str, dict[str, Any]] = {
    "archive_transfer": {
        "archive_from": "南宁市人才服务中心",
        "archive_to": "青秀区人才服务中心",
        "person_category": "flexible_worker",
        "is_graduate": False,
        "education": [
            {"degree": "bachelor", "degree_nature": "full_time", "graduation_date": "2012-07-01", "school": "广西大学"}
        ],
        "transfer_reason": "resignation_or_dismissal",
    },
    "resident_pension_enrolment": {
        "contribution_tier": 300,
        "is_student": False,
        "public_staff": False,
        "old_rural_pension": False,
        "other_pension": False,
    },
    "social_security_card": {
        "bank": "guilin_bank",
        "id_valid_long_term": False,
        "id_valid_from": "2016-05-01",
        "id_valid_to": "2036-05-01",
        "card_applied_before": False,
    },
    "resident_medical_enrolment": {"community": "新竹社区", "employed": False},
    "resident_medical_change": {
        "insured_unit": "新竹社区",
        "changes": [{"item": "移动电话", "before": "13800000000", "after": "13912345678", "confirmed": True}],
    },
    "employee_medical_enrolment": {
        "insured_place": "450100",
        "insurance_types": ["employee_basic_medical", "large_amount_medical"],
        "scheme": "combined_accounts",
    },
    "employee_medical_change": {
        "changes": [{"item": "常住地详细地址", "before": "青秀区", "after": "兴宁区", "confirmed": True}]
    },
    "contribution_declaration": {
        "rows": [
            {
                "fee_type": "pension",
                "levy_item": "flexible_pension",
                "period_start": "2026-11-01",
                "period_end": "2026-11-30",
                "contribution_base": 4500,
            }
        ]
    },
}


def id_number(birth: str, sequence: str = "123", division: str = "450103") -> str:
    first17 = division + birth + sequence
    return first17 + check_character(first17)


def body(*matters: str, **changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "profile": "guangxi",
        "channel": "online",
        "applicant": {
            "name": "韦小宝",
            "id_type": "resident_id",
            "id_number": id_number("19900307"),
            "phone": "13912345678",
            "household_division_code": "450103",
        },
        "matters": list(matters),
        "sections": {m: copy.deepcopy(SECTIONS[m]) for m in matters if m != "employee_pension_enrolment"},
        "delivery": "online",
    }
    result.update(changes)
    return result


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load_dir(PROFILES)


def codes(registry, data, today=TODAY) -> list[tuple[str, str]]:
    return [(e.code, e.field) for e in validate_application(data, registry, today=today).errors]


def test_a_full_valid_application(registry):
    data = body(
        "archive_transfer",
        "employee_pension_enrolment",
        "social_security_card",
        "employee_medical_enrolment",
        "contribution_declaration",
    )
    outcome = validate_application(data, registry, today=TODAY)
    assert outcome.errors == []
    app = outcome.application
    assert app is not None and app.profile == "guangxi" and app.delivery == "online"
    assert app.applicant["birth_date"] == "1990-03-07" and app.applicant["sex"] == "male"
    assert app.applicant["division_code"] == "450103"
    assert app.sections["employee_pension_enrolment"] == {}


def test_matters_come_back_in_profile_order(registry):
    data = body("contribution_declaration", "employee_medical_enrolment", "archive_transfer")
    app = validate_application(data, registry, today=TODAY).application
    assert app is not None
    assert app.matters == ["archive_transfer", "employee_medical_enrolment", "contribution_declaration"]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("resident_pension_enrolment", "employee_pension_enrolment"),
        ("resident_medical_enrolment", "employee_medical_enrolment"),
        ("resident_medical_enrolment", "resident_medical_change"),
        ("employee_medical_enrolment", "employee_medical_change"),
    ],
)
def test_every_exclusion_pair(registry, first, second):
    assert codes(registry, body(first, second)) == [("matters.mutually_exclusive", "matters.1")]
    assert codes(registry, body(first)) == [] and codes(registry, body(second)) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("resident_pension_enrolment", "resident_medical_enrolment"),
        ("employee_pension_enrolment", "employee_medical_enrolment"),
        ("resident_medical_change", "employee_medical_change"),
        ("resident_pension_enrolment", "employee_medical_change"),
    ],
)
def test_pairs_the_seed_allows(registry, first, second):
    assert codes(registry, body(first, second)) == []


def test_prerequisite_missing(registry):
    assert codes(registry, body("contribution_declaration")) == [("matters.prerequisite_missing", "matters.0")]
    # a change registration is not an enrolment
    assert codes(registry, body("employee_medical_change", "contribution_declaration")) == [
        ("matters.prerequisite_missing", "matters.1")
    ]


@pytest.mark.parametrize(
    "enrolment",
    [
        "resident_pension_enrolment",
        "employee_pension_enrolment",
        "resident_medical_enrolment",
        "employee_medical_enrolment",
    ],
)
def test_prerequisite_selected_in_the_same_case(registry, enrolment):
    assert codes(registry, body("contribution_declaration", enrolment)) == []


def test_prerequisite_already_held(registry):
    data = body("contribution_declaration")
    data["sections"]["contribution_declaration"]["already_enrolled"] = ["employee_medical_enrolment"]
    assert codes(registry, data) == []
    data["sections"]["contribution_declaration"]["already_enrolled"] = ["social_security_card"]
    assert ("section.field.invalid", "sections.contribution_declaration.already_enrolled.0") in codes(registry, data)


# (birth, sex sequence, last day before the retirement month, first day of it), DOMAIN.md examples and k < 0.
RETIREMENT_BOUNDARIES = [
    ("19641215", "123", datetime.date(2024, 11, 30), datetime.date(2024, 12, 1)),  # man, before the reform: 60y0m
    ("19650115", "123", datetime.date(2025, 1, 31), datetime.date(2025, 2, 1)),  # man born 1965-01: 2025-02, 60y1m
    ("19651215", "123", datetime.date(2026, 2, 28), datetime.date(2026, 3, 1)),  # man born 1965-12: 2026-03, 60y3m
    ("19710415", "124", datetime.date(2026, 7, 31), datetime.date(2026, 8, 1)),  # woman (55) 1971-04: 2026-08
    ("19691215", "124", datetime.date(2024, 11, 30), datetime.date(2024, 12, 1)),  # woman (55), before the reform
]


@pytest.mark.parametrize(("birth", "sequence", "before", "on"), RETIREMENT_BOUNDARIES)
def test_retirement_age_boundaries_around_the_2025_reform(registry, birth, sequence, before, on):
    """四.3(1): 「尚未达到法定退休年龄的…灵活就业人员，可参加企业职工基本养老保险」."""
    data = body("employee_pension_enrolment", applicant=guangxi_applicant(id_number(birth, sequence)))
    assert codes(registry, data, today=before) == []
    assert codes(registry, data, today=on) == [("applicant.age.over_retirement", "applicant.id_number")]


def guangxi_applicant(number: str, **extra: Any) -> dict[str, Any]:
    return {"name": "韦", "id_type": "resident_id", "id_number": number, "phone": "13912345678",
            "household_division_code": "450103", **extra}


def test_a_61_year_old_rural_man_enrols_in_the_resident_pension(registry):
    """四.3(2): 「具有广西壮族自治区户籍、年满16周岁（不含在校学生），非国家机关和事业单位工作人员
    及不属于企业职工基本养老保险制度覆盖范围的城乡居民，在户籍地参加城乡居民养老保险」: no upper age."""
    data = body("resident_pension_enrolment", applicant=guangxi_applicant(id_number("19650601")))
    assert codes(registry, data) == []


def test_employee_medical_enrolment_has_no_retirement_bar(registry):
    """四.4(1): 「16周岁以上的未就业的城乡居民…申请参加城乡居民基本医疗保险或职工基本医疗保险」: no retirement bar."""
    data = body("employee_medical_enrolment", applicant=guangxi_applicant(id_number("19600101")))
    assert codes(registry, data) == []


def test_retirement_does_not_limit_matters_without_the_rule(registry):
    applicant = guangxi_applicant(id_number("19500101"))
    assert codes(registry, body("social_security_card", "resident_medical_enrolment", applicant=applicant)) == []


@pytest.mark.parametrize(
    "matter", ["resident_pension_enrolment", "resident_medical_enrolment", "employee_medical_enrolment"]
)
def test_sixteen_years_minimum(registry, matter):
    """四.3(2) 「年满16周岁」 and 四.4(1) 「16周岁以上的…城乡居民」."""
    applicant = guangxi_applicant(id_number("20101123"))
    assert codes(registry, body(matter, applicant=applicant), today=datetime.date(2026, 11, 23)) == []
    assert codes(registry, body(matter, applicant=applicant), today=datetime.date(2026, 11, 22)) == [
        ("applicant.age.under_minimum", "applicant.id_number")
    ]


@pytest.mark.parametrize("matter", ["resident_medical_change", "employee_medical_change"])
def test_change_registrations_have_no_minimum_age(registry, matter):
    """四.4(3): 「申请办理参保信息变更的，申请人应为已经参加城乡居民基本医疗保险或职工基本医疗保险的自然人」: no age."""
    applicant = guangxi_applicant(id_number("20110601"))
    assert codes(registry, body(matter, applicant=applicant)) == []


def test_no_minimum_age_for_the_card(registry):
    applicant = guangxi_applicant(id_number("20150101"))
    assert codes(registry, body("social_security_card", applicant=applicant)) == []


@pytest.mark.parametrize(
    ("declared", "id_division", "expected"),
    [
        ({"household_division_code": "450103"}, "450103", []),
        # A moved-in person (ID from 深圳) with a Guangxi household is accepted: the ID's division is not the 户籍.
        ({"household_division_code": "450103"}, "440304", []),
        (
            {"household_division_code": "440304"},
            "450103",
            [("eligibility.household_registration", "applicant.household_division_code")],
        ),
        # Nothing is guessed from the ID number or a typed address: the household is declared.
        ({}, "450103", [("field.required", "applicant.household_division_code")]),
        (
            {"household_address": "广西壮族自治区南宁市青秀区"},
            "440304",
            [("field.required", "applicant.household_division_code")],
        ),
    ],
)
def test_resident_pension_needs_a_declared_guangxi_household(registry, declared, id_division, expected):
    """四.3(2): 「具有广西壮族自治区户籍…在户籍地参加城乡居民养老保险」."""
    applicant = {"name": "韦", "id_type": "resident_id", "phone": "13912345678",
                 "id_number": id_number("19900307", "523", division=id_division), **declared}
    assert codes(registry, body("resident_pension_enrolment", applicant=applicant)) == expected


def test_hmt_permit_holders_enrol_where_they_live(registry):
    """四.3(2): 「在广西壮族自治区内居住且办理港澳台居民居住证…
    持港澳台居民居住证可以在居住地参加城乡居民基本养老保险」."""
    applicant = {"name": "陈", "id_type": "hmt_residence_permit", "phone": "13912345678",
                 "id_number": id_number("19900307", division="810000")}
    assert codes(registry, body("resident_pension_enrolment", applicant=applicant)) == [
        ("field.required", "applicant.residence_division_code")
    ]
    applicant["residence_division_code"] = "440304"
    assert codes(registry, body("resident_pension_enrolment", applicant=applicant)) == [
        ("eligibility.household_registration", "applicant.residence_division_code")
    ]
    applicant["residence_division_code"] = "450103"
    assert codes(registry, body("resident_pension_enrolment", applicant=applicant)) == []


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ({"household_division_code": "450103"}, []),
        ({"household_division_code": "440304", "residence_division_code": "450105"}, []),
        (
            {"household_division_code": "440304", "residence_division_code": "440305"},
            [("eligibility.household_registration", "applicant.household_division_code")],
        ),
    ],
)
def test_medical_enrolment_at_household_or_residence(registry, declared, expected):
    """四.4(2): 「申请人应在户籍地或居住地参保」."""
    applicant = {"name": "韦", "id_type": "resident_id", "phone": "13912345678", "id_number": id_number("19900307"),
                 **declared}
    assert codes(registry, body("resident_medical_enrolment", applicant=applicant)) == expected
    assert codes(registry, body("employee_medical_enrolment", applicant=applicant)) == expected


def test_students_cannot_enrol_in_resident_pension(registry):
    data = body("resident_pension_enrolment")
    data["sections"]["resident_pension_enrolment"]["is_student"] = True
    assert codes(registry, data) == [("eligibility.student", "sections.resident_pension_enrolment.is_student")]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"contribution_tier": "no_contribution"},
            [("section.field.required", "sections.resident_pension_enrolment.special_groups")],
        ),
        ({"contribution_tier": "no_contribution", "special_groups": ["extreme_poverty"]}, []),
        (
            {"contribution_tier": "local_extra"},
            [("section.field.required", "sections.resident_pension_enrolment.local_extra_amount")],
        ),
        ({"contribution_tier": "local_extra", "local_extra_amount": 8000}, []),
        (
            {"contribution_tier": 250},
            [("section.field.invalid", "sections.resident_pension_enrolment.contribution_tier")],
        ),
        (
            {"old_rural_pension": True},
            [("section.field.required", "sections.resident_pension_enrolment.old_rural_pension_start")],
        ),
        ({"old_rural_pension": True, "old_rural_pension_start": "2009-01-01"}, []),
        (
            {"special_groups": ["other"]},
            [("section.field.required", "sections.resident_pension_enrolment.special_group_other")],
        ),
    ],
)
def test_resident_pension_tier_and_special_groups(registry, changes, expected):
    data = body("resident_pension_enrolment")
    data["sections"]["resident_pension_enrolment"].update(changes)
    assert codes(registry, data) == expected


def test_card_only_if_never_applied(registry):
    data = body("social_security_card")
    data["sections"]["social_security_card"]["card_applied_before"] = True
    assert codes(registry, data) == [
        ("eligibility.card_already_applied", "sections.social_security_card.card_applied_before")
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"id_valid_long_term": True, "id_valid_to": None}, []),
        ({"id_valid_to": None}, [("section.field.required", "sections.social_security_card.id_valid_to")]),
        ({"id_valid_to": "2026-11-22"}, [("section.field.invalid", "sections.social_security_card.id_valid_to")]),
        (
            {"id_valid_from": "2036-06-01"},
            [
                ("section.field.invalid", "sections.social_security_card.id_valid_from"),
                ("section.field.invalid", "sections.social_security_card.id_valid_to"),
            ],
        ),
        ({"bank": "bank_of_atlantis"}, [("section.field.invalid", "sections.social_security_card.bank")]),
        ({"photo": "x.jpg"}, [("section.unexpected", "sections.social_security_card.photo")]),
    ],
)
def test_card_section(registry, changes, expected):
    data = body("social_security_card")
    section = data["sections"]["social_security_card"]
    for key, value in changes.items():
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    assert codes(registry, data) == expected


@pytest.mark.parametrize("matter", ["resident_medical_change", "employee_medical_change"])
@pytest.mark.parametrize(("item", "after"), [("姓名", "乙"), ("公民身份号码", id_number("19900307", "125"))])
def test_name_or_id_change_only_at_the_window(registry, matter, item, after):
    """四.4(3): 「变更姓名、公民身份号码等重要个人信息的，只能线下办理」; 变更事项名称 is the form's free text."""
    data = body(matter)
    data["sections"][matter]["changes"].append({"item": item, "before": "甲", "after": after, "confirmed": True})
    assert codes(registry, data) == [("channel.not_allowed", f"sections.{matter}.changes.1.item")]
    data["channel"] = "window"
    assert codes(registry, data) == []


def test_change_rows_must_change_something_and_be_confirmed(registry):
    data = body("employee_medical_change")
    data["sections"]["employee_medical_change"]["changes"] = [
        {"item": "postcode", "before": "530000", "after": "530000", "confirmed": False}
    ]
    assert codes(registry, data) == [
        ("section.field.invalid", "sections.employee_medical_change.changes.0.confirmed"),
        ("section.field.invalid", "sections.employee_medical_change.changes.0.after"),
    ]


def test_employee_medical_needs_the_basic_insurance(registry):
    data = body("employee_medical_enrolment")
    data["sections"]["employee_medical_enrolment"]["insurance_types"] = ["long_term_care"]
    assert codes(registry, data) == [("section.field.invalid", "sections.employee_medical_enrolment.insurance_types")]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {
                "fee_type": "medical",
                "levy_item": "resident_medical",
                "period_start": "2026-01-01",
                "period_end": "2026-12-31",
                "tier_amount": 400,
            },
            [],
        ),
        (
            {
                "fee_type": "medical",
                "levy_item": "resident_medical",
                "period_start": "2026-01-01",
                "period_end": "2026-12-31",
            },
            [("section.field.required", "sections.contribution_declaration.rows.0.tier_amount")],
        ),
        (
            {
                "fee_type": "pension",
                "levy_item": "flexible_pension",
                "period_start": "2026-11-01",
                "period_end": "2026-10-01",
                "contribution_base": 4500,
            },
            [("section.field.invalid", "sections.contribution_declaration.rows.0.period_end")],
        ),
        (
            {
                "fee_type": "pension",
                "levy_item": "flexible_pension",
                "period_start": "2026-11-01",
                "period_end": "2026-11-30",
            },
            [("section.field.required", "sections.contribution_declaration.rows.0.contribution_base")],
        ),
        (
            {
                "fee_type": "pension",
                "levy_item": "flexible_pension",
                "period_start": "2026-11-01",
                "period_end": "2026-11-30",
                "contribution_base": 4500,
                "amount_due": -1,
            },
            [("section.field.invalid", "sections.contribution_declaration.rows.0.amount_due")],
        ),
    ],
)
def test_declaration_rows(registry, row, expected):
    data = body("employee_pension_enrolment", "contribution_declaration")
    data["sections"]["contribution_declaration"]["rows"] = [row]
    assert codes(registry, data) == expected


def test_archive_rows_and_reason(registry):
    data = body("archive_transfer")
    section = data["sections"]["archive_transfer"]
    section["education"].append({"degree": "master", "degree_nature": "part_time", "graduation_date": "2030-07-01"})
    section["transfer_reason"] = "other"
    assert codes(registry, data) == [
        ("section.field.required", "sections.archive_transfer.education.1.school"),
        ("section.field.required", "sections.archive_transfer.transfer_reason_other"),
        ("section.field.invalid", "sections.archive_transfer.education.1.graduation_date"),
    ]


def test_proxy_application(registry):
    agent = {
        "name": "李四",
        "id_type": "resident_id",
        "id_number": id_number("19850101", "345"),
        "relationship": "配偶",
    }
    outcome = validate_application(body("employee_pension_enrolment", agent=agent), registry, today=TODAY)
    assert outcome.errors == [] and outcome.application is not None
    assert outcome.application.agent == agent

    incomplete = {"name": "李四", "id_type": "resident_id", "id_number": id_number("19850101", "345")[:-1] + "0"}
    assert codes(registry, body("employee_pension_enrolment", agent=incomplete)) == [
        ("agent.required_fields", "agent.relationship"),
        ("agent.id_number.checksum", "agent.id_number"),
    ]
    myself = {**agent, "id_number": id_number("19900307")}
    assert codes(registry, body("employee_pension_enrolment", agent=myself)) == [
        ("agent.same_as_applicant", "agent.id_number")
    ]


def test_five_problems_give_five_errors_at_once(registry):
    data = body("resident_pension_enrolment", "employee_pension_enrolment", "contribution_declaration")
    data["applicant"]["id_number"] = "450103199003071230"  # wrong check character
    data["applicant"]["phone"] = "12345"
    del data["sections"]["resident_pension_enrolment"]["contribution_tier"]
    data["sections"]["contribution_declaration"]["rows"][0]["period_start"] = "2026-13-01"
    data["agent"] = {"name": "李四"}
    found = codes(registry, data)
    assert set(found) >= {
        ("applicant.id_number.checksum", "applicant.id_number"),
        ("applicant.phone.invalid", "applicant.phone"),
        ("section.field.required", "sections.resident_pension_enrolment.contribution_tier"),
        ("section.field.invalid", "sections.contribution_declaration.rows.0.period_start"),
        ("matters.mutually_exclusive", "matters.1"),
    }
    outcome = validate_application(data, registry, today=TODAY)
    assert outcome.application is None
    for error in outcome.errors:
        assert error.message_zh and error.message_en


def test_exactly_five_different_problems(registry):
    data = body("employee_medical_enrolment", "employee_medical_change")  # 1: exclusion
    data["applicant"]["phone"] = "999"  # 2
    data["channel"] = "fax"  # 3
    data["sections"]["employee_medical_enrolment"]["insured_place"] = "110000"  # 4
    data["sections"]["social_security_card"] = {"bank": "icbc"}  # 5: section of an unselected matter
    assert sorted(codes(registry, data)) == sorted(
        [
            ("matters.mutually_exclusive", "matters.1"),
            ("applicant.phone.invalid", "applicant.phone"),
            ("field.invalid", "channel"),
            ("section.field.invalid", "sections.employee_medical_enrolment.insured_place"),
            ("section.unexpected", "sections.social_security_card"),
        ]
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], [("body.invalid", "")]),
        ("text", [("body.invalid", "")]),
        (
            {},
            [
                ("field.required", "profile"),
                ("field.required", "channel"),
                ("field.required", "applicant"),
                ("field.required", "matters"),
            ],
        ),
        ({**body("archive_transfer"), "profile": "atlantis"}, [("profile.unknown", "profile")]),
        (
            {**body("archive_transfer"), "matters": []},
            [("matters.empty", "matters"), ("section.unexpected", "sections.archive_transfer")],
        ),
        (
            {**body("employee_pension_enrolment"), "matters": ["employee_pension_enrolment", "housing_fund_account"]},
            [("matters.unknown", "matters.1")],
        ),
        (
            {**body("employee_pension_enrolment"), "matters": ["employee_pension_enrolment"] * 2},
            [("matters.duplicate", "matters.1")],
        ),
        (
            {**body("employee_pension_enrolment"), "matters": "employee_pension_enrolment"},
            [("field.invalid", "matters")],
        ),
        ({**body("employee_pension_enrolment"), "delivery": "pigeon"}, [("field.invalid", "delivery")]),
        ({**body("archive_transfer"), "sections": {}}, [("section.missing", "sections.archive_transfer")]),
        (
            {**body("archive_transfer"), "sections": {"archive_transfer": []}},
            [("section.field.invalid", "sections.archive_transfer")],
        ),
    ],
)
def test_envelope_problems(registry, data, expected):
    assert codes(registry, data) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # 附件2 证件类型 「□其他：」: a description, and birth date and sex the number does not carry; 职工参保登记
        # takes the documents of 五 通用材料2 only.
        (
            {"id_type": "other"},
            [
                ("field.required", "applicant.id_description"),
                ("field.required", "applicant.birth_date"),
                ("field.required", "applicant.sex"),
                ("matters.id_type_not_accepted", "matters.0"),
            ],
        ),
        ({"id_type": "driving_licence"}, [("field.invalid", "applicant.id_type")]),
        ({"id_number": id_number("19900230")}, [("applicant.id_number.birth_date", "applicant.id_number")]),
        ({"id_number": "450103900307123"}, [("applicant.id_number.obsolete_15_digit", "applicant.id_number")]),
        ({"id_number": None}, [("field.required", "applicant.id_number")]),
        ({"sex": "female"}, [("applicant.sex.mismatch", "applicant.sex")]),
        ({"birth_date": "1990-03-08"}, [("applicant.birth_date.mismatch", "applicant.birth_date")]),
        ({"postcode": "5300"}, [("field.invalid", "applicant.postcode")]),
        ({"phone": "0771-5505220"}, []),
        (
            {
                "sex": "male",
                "birth_date": "1990-03-07",
                "ethnicity": "壮族",
                "political_status": "群众",
                "postcode": "530000",
                "residence_address": "南宁市青秀区",
            },
            [],
        ),
    ],
)
def test_applicant_fields(registry, changes, expected):
    data = body("employee_pension_enrolment")
    for key, value in changes.items():
        if value is None:
            data["applicant"].pop(key)
        else:
            data["applicant"][key] = value
    assert codes(registry, data) == expected


def test_unknown_division_is_a_warning_only(registry):
    applicant = {
        "name": "韦",
        "id_type": "resident_id",
        "id_number": id_number("19900307", division="459999"),
        "phone": "13912345678",
    }
    outcome = validate_application(body("employee_pension_enrolment", applicant=applicant), registry, today=TODAY)
    assert outcome.errors == [] and outcome.application is not None
    assert [(w.code, w.field) for w in outcome.warnings] == [
        ("applicant.id_number.division_unknown", "applicant.id_number")
    ]


def test_error_messages_name_the_form_field_in_chinese(registry):
    data = body("social_security_card")
    data["sections"]["social_security_card"]["bank"] = "nope"
    (error,) = validate_application(data, registry, today=TODAY).errors
    assert "开户银行" in error.message_zh and "桂林银行(guilin_bank)" in error.message_zh
    assert "guilin_bank" in error.message_en


def test_unknown_envelope_applicant_and_agent_fields_are_ignored_with_a_warning(registry):
    data = {**body("employee_pension_enrolment"), "extra": 1}
    data["applicant"] = {**data["applicant"], "nickname": "小宝"}
    outcome = validate_application(data, registry, today=TODAY)
    assert outcome.errors == [] and outcome.application is not None
    assert "nickname" not in outcome.application.applicant
    assert [(w.code, w.field) for w in outcome.warnings if w.code == "field.ignored"] == [
        ("field.ignored", "extra"), ("field.ignored", "applicant.nickname")]
