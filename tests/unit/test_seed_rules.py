"""Rules read from the seeds (shared/seeds/): who is accepted, which ID documents, notices, the whole-case limit.

Each test quotes the seed sentence it enforces; every one of them failed before the rule was read as written.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.domain.identity_numbers import IdNumberError, check_character, parse_foreign_permanent_residence
from gateway.domain.materials import materials_for
from gateway.domain.validation import validate_application
from gateway.profiles.catalogue import catalogue
from gateway.profiles.loader import ProfileRegistry
from mocks.population import person

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
TODAY = datetime.date(2026, 11, 23)
FOREIGNER = "94584019850314001X"  # 9 + 45 (Guangxi) + 840 + 1985-03-14 + 001 + check character


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load_dir(PROFILES)


def number(division: str, birth: str, sequence: str = "123") -> str:
    return division + birth + sequence + check_character(division + birth + sequence)


def case(matter: str, section: dict[str, Any], applicant: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"profile": "guangxi", "channel": "online", "applicant": applicant, "matters": [matter],
            "sections": {matter: copy.deepcopy(section)}, **extra}


RESIDENT_MEDICAL = {"community": "新竹社区", "employed": False}
RESIDENT_PENSION = {"contribution_tier": 100, "is_student": False, "public_staff": False,
                    "old_rural_pension": False, "other_pension": False}


def errors(registry: ProfileRegistry, body: dict[str, Any], today: datetime.date = TODAY) -> list[tuple[str, str]]:
    return [(e.code, e.field) for e in validate_application(body, registry, today=today).errors]


def test_a_61_year_old_rural_man_is_accepted_for_the_resident_pension(registry):
    """四.3(2): 「具有广西壮族自治区户籍、年满16周岁（不含在校学生）…在户籍地参加城乡居民养老保险」: no upper age."""
    applicant = {"name": "韦老汉", "id_type": "resident_id", "id_number": number("450103", "19650301"),
                 "phone": "13912345678", "household_division_code": "450103"}
    assert errors(registry, case("resident_pension_enrolment", RESIDENT_PENSION, applicant)) == []


def test_a_moved_in_applicant_declaring_a_guangxi_household_is_accepted(registry):
    """四.3(2): 「具有广西壮族自治区户籍…在户籍地参加」: the 户籍 is where the person is registered now, not where
    the ID number was issued (440304 深圳; the mock population's household register says 450103)."""
    moved = number("440304", "19900307", "523")
    assert person(moved).division_code == "450103"
    applicant = {"name": "韦", "id_type": "resident_id", "id_number": moved, "phone": "13912345678",
                 "household_division_code": person(moved).division_code}
    assert errors(registry, case("resident_pension_enrolment", RESIDENT_PENSION, applicant)) == []


def test_public_staff_are_refused_the_resident_pension(registry):
    """四.3(2): 「非国家机关和事业单位工作人员…在户籍地参加城乡居民养老保险」."""
    applicant = {"name": "韦", "id_type": "resident_id", "id_number": number("450103", "19900307"),
                 "phone": "13912345678", "household_division_code": "450103"}
    body = case("resident_pension_enrolment", {**RESIDENT_PENSION, "public_staff": True}, applicant)
    assert errors(registry, body) == [("eligibility.public_staff", "sections.resident_pension_enrolment.public_staff")]


def foreigner(**extra: Any) -> dict[str, Any]:
    return {"name": "John Smith", "id_type": "foreign_permanent_residence", "id_number": FOREIGNER,
            "sex": "male", "phone": "13912345678", "residence_division_code": "450103", **extra}


def test_a_foreigner_enrols_in_resident_medical_and_not_in_a_matter_without_that_id_type(registry):
    """四.4(1): 「在广西居住且办理外国人永久居留证的未就业外国人申请参加城乡居民基本医疗保险」:
    resident medical only."""
    outcome = validate_application(case("resident_medical_enrolment", RESIDENT_MEDICAL, foreigner()), registry,
                                   today=TODAY)
    assert outcome.errors == [] and outcome.application is not None
    assert outcome.application.applicant["birth_date"] == "1985-03-14"
    refused = case("employee_medical_enrolment", {"insured_place": "450100", "insurance_types":
                                                  ["employee_basic_medical"], "scheme": "combined_accounts"},
                   foreigner())
    assert errors(registry, refused) == [("matters.id_type_not_accepted", "matters.0")]


def test_a_foreigner_lives_in_guangxi(registry):
    """四.4(1): 「在广西居住且办理外国人永久居留证的…外国人」."""
    body = case("resident_medical_enrolment", RESIDENT_MEDICAL, foreigner(residence_division_code="440304"))
    assert errors(registry, body) == [("eligibility.household_registration", "applicant.residence_division_code")]


@pytest.mark.parametrize(
    ("raw", "birth"),
    [(FOREIGNER, datetime.date(1985, 3, 14)), ("usa450312345678", None)],
)
def test_foreign_permanent_residence_numbers(raw, birth):
    """五 社会保障卡: 「外国人永久居留身份证【永久居留身份证的应为最新版本（18位证件号）】」;
    the older 15 characters too."""
    assert parse_foreign_permanent_residence(raw, today=TODAY)[1] == birth


@pytest.mark.parametrize("raw", [FOREIGNER[:-1] + "1", "845840198503140012", "US4503123456789"])
def test_foreign_permanent_residence_numbers_refused(raw):
    with pytest.raises(IdNumberError):
        parse_foreign_permanent_residence(raw, today=TODAY)


@pytest.mark.parametrize(
    "agent",
    [
        {"id_type": "passport", "id_number": "E12345678"},
        {"id_type": "other", "id_number": "A1234567", "id_description": "军官证"},
    ],
)
def test_a_passport_or_other_document_agent_is_accepted(registry, agent):
    """五 通用材料3: 「如委托代办，除以上材料外还需提供受委托人的有效身份证件原件」: any valid ID document."""
    body = case("resident_medical_enrolment", RESIDENT_MEDICAL, foreigner(),
                agent={"name": "李四", "relationship": "朋友", **agent})
    assert errors(registry, body) == []


def test_an_other_document_needs_its_description(registry):
    """附件2 证件类型: 「□其他：」 — the blank says which document."""
    body = case("resident_medical_enrolment", RESIDENT_MEDICAL, foreigner(),
                agent={"name": "李四", "relationship": "朋友", "id_type": "other", "id_number": "A1234567"})
    assert errors(registry, body) == [("field.required", "agent.id_description")]


def test_the_proxy_authorisation_is_required_for_an_employee_medical_proxy(registry):
    """附件2 灵活就业人员医疗保险申报 须知4: 「委托他人办理的，还应提交参保人签署的委托书、受托人身份证原件」."""
    applicant = {"name": "韦", "id_type": "resident_id", "id_number": number("450103", "19900307"),
                 "phone": "13912345678", "household_division_code": "450103"}
    section = {"insured_place": "450100", "insurance_types": ["employee_basic_medical"], "scheme": "combined_accounts"}
    agent = {"name": "李四", "relationship": "配偶", "id_type": "resident_id",
             "id_number": number("450103", "19850101")}
    alone = validate_application(case("employee_medical_enrolment", section, applicant), registry, today=TODAY)
    proxied = validate_application(case("employee_medical_enrolment", section, applicant, agent=agent), registry,
                                   today=TODAY)
    assert alone.application is not None and proxied.application is not None
    profile = registry.get("guangxi")
    assert "proxy_authorisation" not in {m["code"] for m in materials_for(profile, alone.application)}
    assert "proxy_authorisation" in {m["code"] for m in materials_for(profile, proxied.application)}


def change(item: str, before: str, after: str) -> dict[str, Any]:
    return {"changes": [{"item": item, "before": before, "after": after, "confirmed": True}]}


def guangxi_applicant() -> dict[str, Any]:
    return {"name": "韦", "id_type": "resident_id", "id_number": number("450103", "19900307"),
            "phone": "13912345678", "household_division_code": "450103"}


def test_the_employee_change_covers_the_scheme_and_a_combined_scheme_is_final(registry):
    """附件2 职工参保信息变更登记 须知3:
    「参保方式由统筹基金、住院保险变更为统账结合后，均不允许变更为其它参保方式」."""
    allowed = case("employee_medical_change", change("参保方式", "住院保险", "统账结合"), guangxi_applicant())
    assert errors(registry, allowed) == []
    locked = case("employee_medical_change", change("参保方式", "统账结合", "住院保险"), guangxi_applicant())
    assert errors(registry, locked) == [
        ("eligibility.scheme_locked", "sections.employee_medical_change.changes.0.before")
    ]


def test_change_items_are_free_text(registry):
    """附件2 变更登记: 「变更事项名称 | 变更前 | 变更后 | 备注 | 本人确认」 — the applicant writes the item."""
    body = case("resident_medical_change", {"insured_unit": "新竹社区", **change("紧急联系人", "张三", "李四")},
                guangxi_applicant())
    assert errors(registry, body) == []


def test_the_new_id_number_of_a_change_must_be_valid(registry):
    """四.4(3): 「参保人员需要变更姓名、公民身份号码…等信息」: the new number is a number (GB 11643)."""
    bad = case("employee_medical_change", change("公民身份号码", "甲", "450103199003071230"), guangxi_applicant(),
               channel="window")
    assert errors(registry, bad) == [("section.id_number.checksum", "sections.employee_medical_change.changes.0.after")]
    good = case("employee_medical_change", change("公民身份号码", "甲", number("450103", "19900307", "125")),
                guangxi_applicant(), channel="window")
    assert errors(registry, good) == []


def test_notices_are_served_in_the_catalogue(registry):
    """附件2 须知: 「在每年6月30日前缴纳当年参保费用的，只需缴纳个人缴费标准部分」,
    「大额医疗费用统筹须每年1月底前缴纳」, 「足额缴费后第三个月才能享受医保待遇」."""
    matters = {m["code"]: m for m in catalogue(registry.get("guangxi"))["matters"]}
    resident = matters["resident_medical_enrolment"]["notices"]
    assert any(n.get("cutoff", {}).get("month") == 6 and n["cutoff"]["day"] == 30 for n in resident)
    employee = matters["employee_medical_enrolment"]["notices"]
    assert any(n.get("cutoff", {}).get("month") == 1 and n["cutoff"]["day"] == 31 for n in employee)
    assert any(n.get("benefits_from_month") == 3 for n in employee)
    assert all(n["text_zh"] and n["source"] for m in matters.values() for n in m["notices"])
    assert matters["resident_medical_enrolment"]["id_types"] == [
        "resident_id", "hmt_residence_permit", "foreign_permanent_residence"
    ]


@pytest.mark.parametrize(("today", "warned"), [(datetime.date(2026, 6, 30), False), (datetime.date(2026, 7, 1), True)])
def test_a_case_after_june_30_warns_about_the_resident_medical_payment(registry, today, warned):
    """附件2 城乡居民参保登记 须知2: 「城乡居民在每年7月1日至12月31日缴纳当年参保费用的，
    应由个人一次性缴纳当年财政补助标准和个人缴费标准的费用」."""
    outcome = validate_application(case("resident_medical_enrolment", RESIDENT_MEDICAL, guangxi_applicant()),
                                   registry, today=today)
    assert outcome.errors == []
    assert ("notice.resident_medical.after_june_30" in {w.code for w in outcome.warnings}) is warned


@pytest.mark.parametrize(("types", "warned"), [(["employee_basic_medical"], False),
                                               (["employee_basic_medical", "large_amount_medical"], True)])
def test_large_amount_pooling_after_january_warns(registry, types, warned):
    """附件2 灵活就业人员医疗保险申报 须知1: 「大额医疗费用统筹须每年1月底前缴纳」."""
    section = {"insured_place": "450100", "insurance_types": types, "scheme": "combined_accounts"}
    outcome = validate_application(case("employee_medical_enrolment", section, guangxi_applicant()), registry,
                                   today=datetime.date(2026, 2, 1))
    assert ("notice.large_amount_medical.after_january" in {w.code for w in outcome.warnings}) is warned


def test_the_statutory_limit_of_a_case_is_the_sum_over_its_own_matters(registry):
    """六(一): 「整体法定办结时限为各联办事项法定办结时限之和，共计85个工作日」."""
    guangxi = registry.get("guangxi")
    assert guangxi.statutory_days([m.code for m in guangxi.matters]) == 85
    assert guangxi.statutory_days(["resident_medical_enrolment", "contribution_declaration"]) == 10
    assert registry.get("jiujiang").statutory_days(["employment_registration"]) is None


def test_jiujiang_housing_fund_declares_income_and_credit(registry):
    """三.4: 「具有合法稳定经济收入来源，个人信用良好，自愿承诺履行缴存住房公积金义务」: declarations on the form."""
    section = {"collection_point": "360400", "monthly_amount": 500, "has_employment_contract": False,
               "insured_elsewhere": False, "income_and_credit": False, "deposit_commitment": True}
    applicant = {"name": "刘", "id_type": "resident_id", "id_number": number("360403", "19880312"),
                 "phone": "13912345678", "household_division_code": "360403"}
    body = {"profile": "jiujiang", "channel": "online", "applicant": applicant, "matters": ["housing_fund_account"],
            "sections": {"housing_fund_account": section}}
    assert errors(registry, body) == [("section.field.invalid", "sections.housing_fund_account.income_and_credit")]


def test_jiujiang_serves_people_in_its_jurisdiction(registry):
    """二: 「在九江市辖区内未达到法定退休年龄的灵活就业人员」."""
    applicant = {"name": "刘", "id_type": "resident_id", "id_number": number("360403", "19880312"),
                 "phone": "13912345678", "household_division_code": "360102"}
    body = {"profile": "jiujiang", "channel": "online", "applicant": applicant, "matters": ["employment_registration"],
            "sections": {}}
    assert errors(registry, body) == [("eligibility.household_registration", "applicant.household_division_code")]
    applicant["residence_division_code"] = "360402"
    assert errors(registry, body) == []


def test_profiles_check_strict_lists_the_placeholders():
    """附件4 「九江市各县市参保情况收集表」 is an empty template: the tiers are placeholders until confirmed."""
    runner = CliRunner()
    plain = runner.invoke(app, ["profiles", "check", str(PROFILES / "jiujiang.yaml")])
    assert plain.exit_code == 0 and "placeholders; --strict lists them" in plain.output
    strict = runner.invoke(app, ["profiles", "check", "--strict", str(PROFILES / "jiujiang.yaml")])
    assert strict.exit_code == 1 and "附件4" in strict.output and "placeholder:" in strict.output
