"""Where each form field goes, the order of steps and the materials of a case, as the profiles state them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest

from gateway.domain.attachments import for_matter, read_materials
from gateway.domain.declaration import declared_rows
from gateway.domain.status import TaskStatus
from gateway.domain.step_order import StepState, certificate_due, dependent_readiness
from gateway.domain.validation import validate_application
from gateway.profiles.loader import ProfileRegistry, consistency_problems
from gateway.profiles.section_schema import section_schema

PROFILES = ProfileRegistry.load_dir(Path(__file__).resolve().parents[2] / "profiles")
TODAY = dt.date(2026, 4, 15)


@pytest.mark.parametrize("code", PROFILES.codes())
def test_every_section_field_says_where_it_goes_or_why_it_stays(code: str) -> None:
    """Guangxi 二(二): 梳理…申请表…明确申请材料的名称…和提供材料的依据; every form field reaches its department or is
    documented as staying (issue 9, "Done when")."""
    profile = PROFILES.get(code)
    unannotated = [f"{matter.code}.{name}" for matter in profile.matters
                   for name, spec in section_schema(profile, matter)["properties"].items()
                   if not (spec.get("x-sent-to") or spec.get("x-stays"))]
    assert unannotated == []


def test_a_refusal_as_already_enrolled_satisfies_the_prerequisite() -> None:
    """附件2 须知1: 办理…参保登记…后，才可进行灵活就业人员社会保险费申报 (any one enrolment; already held counts)."""
    guangxi = PROFILES.get("guangxi").matter("contribution_declaration").prerequisite
    already = StepState(TaskStatus.REJECTED, already_enrolled=True)
    refused = StepState(TaskStatus.REJECTED)
    assert dependent_readiness(guangxi, [already, StepState(TaskStatus.IN_REVIEW)]) == "go"
    assert dependent_readiness(guangxi, [refused, StepState(TaskStatus.IN_REVIEW)]) == "wait"
    assert dependent_readiness(guangxi, [refused, refused]) == "skip"
    jiujiang = PROFILES.get("jiujiang").matter("contribution_declaration").prerequisite
    # 四(一)3: 业务办理完成后…短信通知…缴费: Jiujiang declares after every enrolment of the case.
    assert dependent_readiness(jiujiang, [StepState(TaskStatus.COMPLETED), StepState(TaskStatus.IN_REVIEW)]) == "wait"
    assert dependent_readiness(jiujiang, [StepState(TaskStatus.COMPLETED), refused]) == "go"


def test_the_jiujiang_certificate_waits_for_the_payment() -> None:
    """四(一)4: 申请人缴费完成后，申请人成功参加职工养老保险、职工医疗保险…自动生成《就业创业证》电子证照。"""
    order = PROFILES.get("jiujiang").step_order
    done, waiting = StepState(TaskStatus.COMPLETED), StepState(TaskStatus.AWAITING_PAYMENT)
    enrolled = {"employment_registration": done, "employee_pension_enrolment": done}
    assert not certificate_due(order, enrolled | {"contribution_declaration": waiting})
    assert not certificate_due(order, enrolled)  # enrols but no payment in the case
    assert certificate_due(order, enrolled | {"contribution_declaration": done,
                                              "housing_fund_account": StepState(TaskStatus.REJECTED)})
    assert certificate_due(order, {"employment_registration": done})
    assert not certificate_due(order, {"employment_registration": StepState(TaskStatus.IN_REVIEW)})


def test_the_jiujiang_declaration_declares_the_chosen_tier_from_the_month_of_enrolment() -> None:
    """附件3: 养老保险 缴存档次 (自行选择); 医疗保险 缴存档次 (自行选择)."""
    declares = PROFILES.get("jiujiang").matter("contribution_declaration").declares
    assert declares is not None
    sections = {"employee_pension_enrolment": {"contribution_tier": 200},
                "employee_medical_enrolment": {"contribution_tier": "combined_accounts"}}
    rows = declared_rows(declares, sections, list(sections), "2026-04")
    assert rows == [
        {"fee_type": "pension", "levy_item": "flexible_pension", "period_start": "2026-04", "period_end": "2026-04",
         "contribution_base": 13600.0},
        {"fee_type": "medical", "levy_item": "flexible_medical", "period_start": "2026-04", "period_end": "2026-04",
         "contribution_base": 4080.0, "levy_sub_item": "combined_accounts"},
    ]
    assert [r["fee_type"] for r in declared_rows(declares, sections, ["employee_medical_enrolment"], "2026-04")] == [
        "medical"]


def _archive_case(channel: str = "online", **extra: Any) -> dict[str, Any]:
    section = {"direction": "out", "archive_from": "南宁市人才服务中心", "archive_to": "柳州市人才服务中心",
               "person_category": "flexible_worker", "is_graduate": False, "transfer_reason": "graduation",
               "education": [{"degree": "bachelor", "degree_nature": "full_time", "graduation_date": "2012-06-30",
                              "school": "广西大学"}]}
    return {"profile": "guangxi", "channel": channel, "matters": ["archive_transfer"],
            "applicant": {"name": "韦样例", "id_type": "resident_id", "id_number": "450103199005171239",
                          "phone": "13912345678"},
            "sections": {"archive_transfer": section}, **extra}


def _materials(body: dict[str, Any]) -> Any:
    outcome = validate_application(body, PROFILES, today=TODAY)
    assert outcome.application is not None, outcome.errors
    return read_materials(body, PROFILES.get("guangxi"), outcome.application)


def _attachment(data: bytes, **fields: Any) -> dict[str, Any]:
    return {"material": "archive_transfer_letter", "filename": "调档函.pdf", "content_type": "application/pdf",
            "sha256": hashlib.sha256(data).hexdigest(), "data_base64": base64.b64encode(data).decode()} | fields


def test_a_transfer_out_needs_its_transfer_letter_attached_or_received_at_the_window() -> None:
    """五 材料: 流动人员人事档案转出，需提供有人事档案管理资质单位出具的《调档函》。"""
    assert [p.code for p in _materials(_archive_case()).errors] == ["attachments.required"]
    attached = _materials(_archive_case(attachments=[_attachment(b"%PDF letter")]))
    assert attached.errors == [] and attached.attachments[0]["matter"] == "archive_transfer"
    assert for_matter(attached.attachments, "archive_transfer") == attached.attachments
    at_counter = _materials(_archive_case("window", materials_received=["archive_transfer_letter"]))
    assert at_counter.errors == [] and at_counter.received == ["archive_transfer_letter"]
    online_counter = _materials(_archive_case(materials_received=["archive_transfer_letter"]))
    assert "materials_received.window_only" in [p.code for p in online_counter.errors]


@pytest.mark.parametrize(("fields", "code"), [
    ({"sha256": "0" * 64}, "attachments.sha256_mismatch"),
    ({"content_type": "application/zip"}, "attachments.content_type"),
    ({"material": "cardholder_photo"}, "attachments.material_unknown"),  # social_security_card is not selected
    ({"data_base64": "not base64!"}, "attachments.data"),
])
def test_an_attachment_is_checked_against_the_materials_list(fields: dict[str, Any], code: str) -> None:
    """二(二): 明确申请材料的名称、类型、形式、标准."""
    assert code in [p.code for p in _materials(_archive_case(attachments=[_attachment(b"%PDF", **fields)])).errors]


def test_too_many_or_too_large_attachments_are_refused() -> None:
    """二(二): 明确申请材料的…形式、标准 (a bounded size and count per material)."""
    four = [_attachment(f"%PDF {i}".encode(), filename=f"{i}.pdf") for i in range(4)]
    assert "attachments.too_many" in [p.code for p in _materials(_archive_case(attachments=four)).errors]
    large = [_attachment(b"%PDF" + b"0" * (2 * 1024 * 1024))]
    assert "attachments.too_large" in [p.code for p in _materials(_archive_case(attachments=large)).errors]


def test_the_order_of_steps_names_only_matters_of_the_profile() -> None:
    """Region behaviour is data (seeds README): a step order naming a matter the profile lacks is refused."""
    jiujiang = PROFILES.get("jiujiang")
    broken = jiujiang.model_copy(update={"step_order": jiujiang.step_order.model_copy(
        update={"certificate_after": ["employment_registraton"]})})
    assert consistency_problems(broken) == [
        "step_order.certificate_after: names unknown matter 'employment_registraton'"]
    assert consistency_problems(jiujiang) == []
