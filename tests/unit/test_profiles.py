"""Region profiles: loading, the catalogue, schemas a generic renderer can fill, and precise profile checks."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from gateway.domain.identity_numbers import check_character
from gateway.domain.materials import materials_for
from gateway.domain.validation import validate_application
from gateway.profiles.catalogue import catalogue, catalogue_index
from gateway.profiles.check import check_profile_file
from gateway.profiles.loader import ProfileError, ProfileRegistry, load_profile
from tests.support.forms import valid_section

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
DEMO = ROOT / "tests" / "fixtures" / "profiles" / "demo_city.yaml"
TODAY = datetime.date.today()

# The adapters' operations as agreed with their authors; the core passes the installed ones at start-up.
OPERATIONS = {
    "hrss": {
        "employment_registration",
        "employee_pension_enrolment",
        "resident_pension_enrolment",
        "social_security_card",
        "archive_transfer",
    },
    "medical": {
        "resident_medical_enrolment",
        "resident_medical_change",
        "employee_medical_enrolment",
        "employee_medical_change",
    },
    "tax": {"contribution_declaration"},
    "housing_fund": {"housing_fund_account"},
}

GUANGXI = {
    "archive_transfer": "hrss",
    "resident_pension_enrolment": "hrss",
    "employee_pension_enrolment": "hrss",
    "social_security_card": "hrss",
    "resident_medical_enrolment": "medical",
    "resident_medical_change": "medical",
    "employee_medical_enrolment": "medical",
    "employee_medical_change": "medical",
    "contribution_declaration": "tax",
}
JIUJIANG = {
    "employment_registration": "hrss",
    "employee_pension_enrolment": "hrss",
    "employee_medical_enrolment": "medical",
    "housing_fund_account": "housing_fund",
    "contribution_declaration": "tax",
}


def id_number(division: str, birth: str, sequence: str = "123") -> str:
    first17 = division + birth + sequence
    return first17 + check_character(first17)


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load_dir(PROFILES, known_operations=OPERATIONS)


@pytest.mark.parametrize(("code", "expected"), [("guangxi", GUANGXI), ("jiujiang", JIUJIANG)])
def test_matters_and_departments_are_those_of_the_seeds(registry, code, expected):
    profile = registry.get(code)
    assert {m.code: m.department for m in profile.matters} == expected
    for matter in profile.matters:
        assert matter.adapter == matter.department
        assert matter.operation == matter.code


def test_registry_codes_and_unknown_profile(registry):
    assert registry.codes() == ["guangxi", "jiujiang"]
    with pytest.raises(KeyError):
        registry.get("atlantis")
    with pytest.raises(KeyError):
        registry.get("guangxi").matter("housing_fund_account")


def test_profile_level_facts(registry):
    guangxi, jiujiang = registry.get("guangxi"), registry.get("jiujiang")
    assert (guangxi.division_code, guangxi.promised_working_days, guangxi.statutory_working_days) == ("450000", 8, 85)
    assert guangxi.female_original_retirement_age == 55
    assert jiujiang.division_code == "360400" and jiujiang.female_original_retirement_age == 55
    assert jiujiang.certificate == "employment_entrepreneurship_certificate" and guangxi.certificate is None
    assert {frozenset(pair) for pair in guangxi.mutually_exclusive} == {
        frozenset({"resident_pension_enrolment", "employee_pension_enrolment"}),
        frozenset({"resident_medical_enrolment", "employee_medical_enrolment"}),
        frozenset({"resident_medical_enrolment", "resident_medical_change"}),
        frozenset({"employee_medical_enrolment", "employee_medical_change"}),
    }
    assert jiujiang.mutually_exclusive == []


@pytest.mark.parametrize(
    ("matter", "online", "window"),
    [
        ("archive_transfer", 2, 0),
        ("resident_pension_enrolment", 3, 8),
        ("employee_pension_enrolment", 0, 0),
        ("social_security_card", 5, 5),
        ("resident_medical_enrolment", 0, 0),
        ("resident_medical_change", 0, 0),
        ("employee_medical_enrolment", 0, 0),
        ("employee_medical_change", 0, 0),
        ("contribution_declaration", 0, 0),
    ],
)
def test_guangxi_time_limits(registry, matter, online, window):
    limits = registry.get("guangxi").matter(matter).time_limits
    assert (limits.online, limits.window) == (online, window)


def _all_matters(registry: ProfileRegistry) -> list[tuple[str, str]]:
    return [(p, m.code) for p in registry.codes() for m in registry.get(p).matters]


def test_every_section_schema_is_draft_2020_12(registry):
    for profile_code, matter_code in _all_matters(registry):
        entry = _entry(catalogue(registry.get(profile_code)), matter_code)
        Draft202012Validator.check_schema(entry["section_schema"])
        assert entry["section_schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _entry(cat: dict[str, Any], matter_code: str) -> dict[str, Any]:
    return next(m for m in cat["matters"] if m["code"] == matter_code)


def _filled_application(registry: ProfileRegistry, profile_code: str, matter_code: str) -> dict[str, Any]:
    # Through JSON, as the platform receives it.
    cat = json.loads(json.dumps(catalogue(registry.get(profile_code)), ensure_ascii=False))
    matters = [matter_code]
    if matter_code == "contribution_declaration":
        matters = ["employee_pension_enrolment", matter_code]
    sections = {}
    for code in matters:
        value = valid_section(_entry(cat, code)["section_schema"], code)
        if value:  # an empty section is left out, as a form renderer does
            sections[code] = value
    division = {"guangxi": "450103", "jiujiang": "360402", "demo_city": "330106"}[profile_code]
    return {
        "profile": profile_code,
        "channel": "online",
        "applicant": {
            "name": "测试",
            "id_type": "resident_id",
            "id_number": id_number(division, "19900307"),
            "household_division_code": division,
            "phone": "13912345678",
        },
        "matters": matters,
        "sections": sections,
        "delivery": "online",
    }


def test_a_generic_renderer_fills_every_section_validly(registry):
    """CRUCIAL: the first options, minimums, defaults and today's dates make a section the gateway accepts."""
    for profile_code, matter_code in _all_matters(registry):
        body = _filled_application(registry, profile_code, matter_code)
        for code, section in body["sections"].items():
            schema = _entry(catalogue(registry.get(profile_code)), code)["section_schema"]
            Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(section)
        outcome = validate_application(body, registry, today=TODAY)
        assert outcome.errors == [], (profile_code, matter_code, outcome.errors)
        assert outcome.application is not None


def test_catalogue_shape(registry):
    cat = catalogue(registry.get("guangxi"))
    assert set(cat) == {"profile", "name_zh", "name_en", "matters", "rules"}
    assert [m["code"] for m in cat["matters"]] == list(GUANGXI)
    for entry in cat["matters"]:
        assert set(entry) == {"code", "name_zh", "name_en", "department", "section_schema", "materials", "time_limits",
                              "statutory_working_days", "id_types", "notices"}
    assert cat["rules"]["time_limits"] == {
        "promised_working_days": 8, "statutory_working_days": 85, "statutory_formula": "sum_of_matters"
    }
    assert cat["rules"]["prerequisites"]["contribution_declaration"]["or_already_held"] is True
    json.dumps(cat, ensure_ascii=False)  # serialisable as is
    index = catalogue_index(registry)
    assert [p["code"] for p in index["profiles"]] == ["guangxi", "jiujiang"]
    assert index["profiles"][1]["matters"] == list(JIUJIANG)


def test_enumerations_of_the_seed_form(registry):
    def options(matter: str, field: str) -> list[Any]:
        schema = _entry(catalogue(registry.get("guangxi")), matter)["section_schema"]
        return [o["const"] for o in schema["properties"][field]["oneOf"]]

    assert len(options("social_security_card", "bank")) == 17
    tiers = options("resident_pension_enrolment", "contribution_tier")
    assert tiers[:16] == [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1500, 2000, 3000, 4000, 5000, 6000]
    assert tiers[16:] == ["no_contribution", "local_extra"]
    schema = _entry(catalogue(registry.get("guangxi")), "resident_pension_enrolment")["section_schema"]
    assert len(schema["properties"]["special_groups"]["items"]["oneOf"]) == 12


def test_online_applicants_upload_nothing_an_e_license_proves(registry):
    cat = catalogue(registry.get("guangxi"))
    id_doc = next(m for m in cat["rules"]["common_materials"] if m["code"] == "id_document")
    assert id_doc["satisfied_by"] == "id_card" and id_doc["upload"] == {"online": False, "window": True}
    register = _entry(cat, "resident_pension_enrolment")["materials"][0]
    assert register["satisfied_by"] == "household_register" and register["upload"]["online"] is False


def test_materials_of_an_application_include_the_proxy_letter_and_conditions(registry):
    body = _filled_application(registry, "guangxi", "resident_pension_enrolment")
    body["sections"]["resident_pension_enrolment"]["special_groups"] = ["severe_disability"]
    body["agent"] = {
        "name": "李四",
        "id_type": "resident_id",
        "id_number": id_number("450103", "19850101", "345"),
        "relationship": "配偶",
    }
    outcome = validate_application(body, registry, today=TODAY)
    assert outcome.application is not None, outcome.errors
    materials = {m["code"]: m for m in materials_for(registry.get("guangxi"), outcome.application)}
    assert "proxy_commitment_letter" in materials and "agent_id_document" in materials
    assert "disability_certificate" in materials and "low_income_proof" not in materials
    assert materials["household_register"]["upload"] is False
    assert "application_form" not in materials  # generated by the system online


def test_demo_profile_is_added_by_data_only(tmp_path):
    demo = load_profile(DEMO, known_operations=OPERATIONS)
    folder = tmp_path / "profiles"
    folder.mkdir()
    for path in (*PROFILES.glob("*.yaml"), DEMO):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    registry = ProfileRegistry.load_dir(folder, known_operations=OPERATIONS)
    assert registry.codes() == ["demo_city", "guangxi", "jiujiang"]
    assert demo.female_original_retirement_age == 50
    body = _filled_application(registry, "demo_city", "contribution_declaration")
    outcome = validate_application(body, registry, today=TODAY)
    assert outcome.errors == [] and outcome.application is not None
    assert outcome.application.matters == ["employee_pension_enrolment", "contribution_declaration"]
    # The profile's female age 50 is used: a woman born 1975-01 retired in 2025-02 (50y1m); with 55 she would not.
    body["applicant"]["id_number"] = id_number("330106", "19750101", "124")
    errors = validate_application(body, registry, today=datetime.date(2026, 11, 2)).errors
    assert [e.code for e in errors] == ["applicant.age.over_retirement"]


# ---- gateway profiles check: precise messages ------------------------------------------------------------------
def _variant(tmp_path: Path, change) -> Path:
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    change(document)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def test_check_accepts_the_shipped_profiles():
    for path in (*PROFILES.glob("*.yaml"), DEMO):
        assert check_profile_file(path, known_operations=OPERATIONS).problems == []


def test_check_unknown_operation_and_adapter(tmp_path):
    def change(doc):
        doc["matters"][0]["operation"] = "pension_signup"
        doc["matters"][1]["adapter"] = "customs"

    problems = check_profile_file(_variant(tmp_path, change), known_operations=OPERATIONS).problems
    assert any(
        "matters[0] (employee_pension_enrolment): operation 'pension_signup' is not offered by adapter 'hrss'" in p
        for p in problems
    ), problems
    assert any("matters[1] (contribution_declaration): unknown adapter 'customs'" in p for p in problems)
    # Without the installed adapters' table the operation cannot be judged and is not.
    assert check_profile_file(_variant(tmp_path, change)).problems == []


def test_check_exclusion_naming_an_unknown_matter(tmp_path):
    def change(doc):
        doc["mutually_exclusive"] = [["employee_pension_enrolment", "resident_pension_enrolment"]]

    problems = check_profile_file(_variant(tmp_path, change)).problems
    assert any("mutually_exclusive[0]: names unknown matter 'resident_pension_enrolment'" in p for p in problems)


def test_check_prerequisite_cycle(tmp_path):
    def change(doc):
        doc["matters"][0]["prerequisite"] = {"any_of": ["contribution_declaration"]}

    problems = check_profile_file(_variant(tmp_path, change)).problems
    assert any(
        "prerequisites form a cycle: employee_pension_enrolment -> contribution_declaration -> "
        "employee_pension_enrolment" in p
        for p in problems
    ), problems


def test_check_duplicate_codes(tmp_path):
    def change(doc):
        doc["matters"][1]["code"] = "employee_pension_enrolment"

    problems = check_profile_file(_variant(tmp_path, change)).problems
    assert any("matters[1]: duplicate matter code 'employee_pension_enrolment'" in p for p in problems), problems


def test_check_invalid_json_schema(tmp_path):
    def change(doc):
        doc["matters"][0]["section"]["properties"]["tier"] = {"type": "amount"}

    problems = check_profile_file(_variant(tmp_path, change)).problems
    assert any("matters[0] (employee_pension_enrolment): section is not a valid JSON Schema" in p for p in problems)


def test_check_model_errors_name_the_matter(tmp_path):
    def change(doc):
        doc["matters"][1]["time_limits"] = {"online": -1, "window": 0}
        doc["matters"][0]["department"] = "customs"

    problems = check_profile_file(_variant(tmp_path, change)).problems
    assert any("matters[1] (contribution_declaration).time_limits.online" in p for p in problems), problems


def test_check_reports_every_problem_and_broken_yaml(tmp_path):
    def change(doc):
        doc["matters"][0]["department"] = "customs"
        doc["matters"][0]["time_limits"] = {"online": 9, "window": 0}
        doc["matters"][0]["channel_limits"] = [
            {"field": "changes.*.item", "in": ["name"], "channels": ["window"], "reason_zh": "x", "reason_en": "x"}
        ]

    problems = check_profile_file(_variant(tmp_path, change)).problems
    assert any("unknown department 'customs'" in p for p in problems)
    assert any("time_limits.online = 9 exceeds the whole-case promise of 3" in p for p in problems)
    assert any("channel limit names unknown section field 'changes.*.item'" in p for p in problems)
    broken = tmp_path / "broken.yaml"
    broken.write_text("code: [unclosed\n", encoding="utf-8")
    assert "invalid YAML" in check_profile_file(broken).problems[0]


def test_a_broken_profile_never_starts_the_gateway(tmp_path):
    (tmp_path / "bad.yaml").write_text("code: bad\n", encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        ProfileRegistry.load_dir(tmp_path)
    assert any("name_zh" in p and "Field required" in p for p in caught.value.problems)


def test_a_new_department_is_accepted_once_its_adapter_is_installed(tmp_path):
    def change(doc):
        doc["matters"][0].update(department="water_board", adapter="water_board", operation="water_application")

    path = _variant(tmp_path, change)
    problems = check_profile_file(path, known_operations=OPERATIONS).problems
    assert any("unknown adapter 'water_board'" in p for p in problems)
    installed = {**OPERATIONS, "water_board": {"water_application"}}
    assert check_profile_file(path, known_operations=installed).problems == []
