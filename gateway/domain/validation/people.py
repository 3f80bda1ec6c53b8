"""The applicant and the agent: identity documents (every type of 附件2 证件类型), contact details, declarations."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any, get_args

from gateway.domain.identity_numbers import (
    IdNumberError,
    parse_document_number,
    parse_foreign_permanent_residence,
    parse_id_number,
)
from gateway.domain.paths import parse_date
from gateway.domain.validation.report import Report
from gateway.profiles.model import IdType, Profile

ID_TYPES: tuple[str, ...] = get_args(IdType)
# Mainland mobile, or a landline with area code (the Guangxi form asks for 联系电话, not only a mobile).
_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
_SIX_DIGITS = re.compile(r"^\d{6}$")
_APPLICANT_TEXT = {  # optional text fields of the seeds' forms and their maximum length
    "ethnicity": 20,
    "political_status": 20,
    "household_address": 200,
    "residence_address": 200,
}
_APPLICANT_CODES = {  # optional coded fields: label of the error
    "postcode": "邮政编码应为6位数字",
    # 户籍: declared by the applicant (the engine re-checks it against the retrieved household register).
    "household_division_code": "户籍地行政区划代码应为6位数字",
    "residence_division_code": "居住地行政区划代码应为6位数字",
}
_APPLICANT_FIELDS = {"name", "id_type", "id_description", "id_number", "phone", "sex", "birth_date",
                     *_APPLICANT_TEXT, *_APPLICANT_CODES}
_AGENT_FIELDS = {"name", "id_type", "id_description", "id_number", "relationship", "phone"}


@dataclass(frozen=True)
class Identity:
    """Who the applicant is, for the eligibility rules: from the ID number, or stated where the document has none."""

    id_type: str
    number: str
    birth_date: datetime.date
    sex: str
    permit_region: str | None  # HK/Macau/Taiwan residence permit holders


@dataclass(frozen=True)
class _Document:
    number: str
    birth_date: datetime.date | None = None
    sex: str | None = None
    division_code: str | None = None
    permit_region: str | None = None
    division_known: bool = True


def _document(number: str, id_type: str, today: datetime.date) -> _Document:
    """Parse ``number`` as a document of ``id_type``; raises IdNumberError."""
    if id_type in ("resident_id", "hmt_residence_permit"):
        ident = parse_id_number(number, kind=id_type, today=today)  # type: ignore[arg-type]  # one of the two
        return _Document(ident.number, ident.birth_date, ident.sex, ident.division_code, ident.permit_region,
                         ident.division_known)
    if id_type == "foreign_permanent_residence":
        normalised, birth = parse_foreign_permanent_residence(number, today=today)
        return _Document(normalised, birth)
    return _Document(parse_document_number(number, id_type))


def applicant_of(
    body: dict[str, Any], profile: Profile | None, report: Report
) -> tuple[dict[str, Any], Identity | None]:
    raw = body.get("applicant")
    if raw is None:
        report.required("applicant")
        return {}, None
    if not isinstance(raw, dict):
        report.invalid("applicant", "申请人信息应为对象", "'applicant' must be an object")
        return {}, None
    for key in raw:
        if key not in _APPLICANT_FIELDS:
            report.ignored(f"applicant.{key}")
    applicant: dict[str, Any] = {}
    name = text(raw, "name", "applicant", report, required=True, max_length=50)
    if name is not None:
        applicant["name"] = name
    accepted: list[str] = list(profile.applicant_id_types) if profile is not None else list(ID_TYPES)
    document = _id_document(raw, "applicant", accepted, report, applicant)
    _phone(raw, "applicant", report, applicant, required=True)
    _optional_fields(raw, applicant, report)
    return applicant, _identity(applicant, document, report)


def _id_document(
    raw: dict[str, Any], parent: str, accepted: list[str], report: Report, into: dict[str, Any]
) -> _Document | None:
    """id_type (and id_description for 其他) and id_number of the applicant or the agent, into ``into``."""
    id_type = raw.get("id_type")
    if id_type is None:
        _missing(parent, "id_type", report)
    elif id_type not in ID_TYPES:
        report.invalid(f"{parent}.id_type", f"证件类型应为以下之一：{'、'.join(ID_TYPES)}",
                       f"'{parent}.id_type' must be one of: {', '.join(ID_TYPES)}")
    elif id_type not in accepted:
        report.add(f"{parent}.id_type.unsupported", f"{parent}.id_type",
                   f"该证件类型不能办理本“一件事”（可用：{'、'.join(accepted)}）",
                   f"ID type '{id_type}' is not accepted here (accepted: {', '.join(accepted)})")
    else:
        into["id_type"] = id_type
    if id_type == "other":  # 附件2 证件类型 □其他：____
        description = text(raw, "id_description", parent, report, required=True, max_length=50)
        if description is not None:
            into["id_description"] = description
    number = raw.get("id_number")
    if number is None or number == "":
        _missing(parent, "id_number", report)
        return None
    if not isinstance(number, str):
        report.invalid(f"{parent}.id_number", "证件号码应为字符串", f"'{parent}.id_number' must be a string")
        return None
    if "id_type" not in into:
        return None
    try:
        document = _document(number, into["id_type"], report.today)
    except IdNumberError as exc:
        if parent == "applicant":
            report.add(exc.code, "applicant.id_number", exc.message_zh, exc.message_en)
        else:
            report.add(exc.code.replace("applicant.", f"{parent}.", 1), f"{parent}.id_number",
                       "代办人" + exc.message_zh, f"Agent: {exc.message_en}")
        return None
    into["id_number"] = document.number
    return document


def _missing(parent: str, key: str, report: Report) -> None:
    if parent == "agent":
        report.add("agent.required_fields", f"agent.{key}", "委托办理须填写代办人证件类型和证件号码",
                   f"A proxy application needs the agent's {key.replace('_', ' ')}")
    else:
        report.required(f"{parent}.{key}")


def _identity(applicant: dict[str, Any], document: _Document | None, report: Report) -> Identity | None:
    """Birth date and sex from the number where it carries them (cross-checked with what is stated), else stated."""
    if document is None:
        return None
    if document.division_code is not None:
        applicant["division_code"] = document.division_code
        if not document.division_known:
            report.warn("applicant.id_number.division_unknown", "applicant.id_number",
                        f"身份证号码中的行政区划代码 {document.division_code} 未能识别，请核对",
                        f"The division code {document.division_code} of the ID number is not known; please check it")
    birth, sex = document.birth_date, document.sex
    stated_birth, stated_sex = applicant.get("birth_date"), applicant.get("sex")
    if birth is not None and stated_birth is not None and stated_birth != birth.isoformat():
        report.add("applicant.birth_date.mismatch", "applicant.birth_date", "出生日期与证件号码不一致",
                   "The birth date does not match the ID number")
    if sex is not None and stated_sex is not None and stated_sex != sex:
        report.add("applicant.sex.mismatch", "applicant.sex", "性别与证件号码不一致",
                   "The sex does not match the ID number")
    birth = birth or parse_date(stated_birth)
    sex = sex or stated_sex
    for key, value in (("birth_date", birth), ("sex", sex)):
        if value is None and key not in applicant:
            label = "出生日期" if key == "birth_date" else "性别"
            report.add("field.required", f"applicant.{key}", f"该证件号码不含{label}，请填写",
                       f"'applicant.{key}' is required for this ID type")
    if birth is None or sex is None:
        return None
    applicant.update(birth_date=birth.isoformat(), sex=sex)
    return Identity(applicant["id_type"], document.number, birth, sex, document.permit_region)


def _optional_fields(raw: dict[str, Any], applicant: dict[str, Any], report: Report) -> None:
    sex = raw.get("sex")
    if sex is not None:
        if sex in ("male", "female"):
            applicant["sex"] = sex
        else:
            report.invalid("applicant.sex", "性别应为 male 或 female", "'applicant.sex' must be 'male' or 'female'")
    birth = raw.get("birth_date")
    if birth is not None:
        day = parse_date(birth)
        if day is None or not datetime.date(1900, 1, 1) <= day <= report.today:
            report.invalid("applicant.birth_date", "出生日期应为YYYY-MM-DD格式的过去日期",
                           "'applicant.birth_date' must be a past date YYYY-MM-DD")
        else:
            applicant["birth_date"] = day.isoformat()
    for key, label in _APPLICANT_CODES.items():
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, str) and _SIX_DIGITS.match(value):
            applicant[key] = value
        else:
            report.invalid(f"applicant.{key}", label, f"'applicant.{key}' must be 6 digits")
    for key, max_length in _APPLICANT_TEXT.items():
        value = text(raw, key, "applicant", report, required=False, max_length=max_length)
        if value is not None:
            applicant[key] = value


def agent_of(body: dict[str, Any], profile: Profile | None, applicant: dict[str, Any],
             report: Report) -> dict[str, Any] | None:
    raw = body.get("agent")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        report.invalid("agent", "代办人信息应为对象", "'agent' must be an object")
        return None
    if profile is not None and not profile.proxy.allowed:
        report.add("agent.not_allowed", "agent", "本地区不支持委托代办", "Proxy applications are not accepted here")
    for key in raw:
        if key not in _AGENT_FIELDS:
            report.ignored(f"agent.{key}")
    agent: dict[str, Any] = {}
    for key, zh in (("name", "代办人姓名"), ("relationship", "与申请人关系")):
        value = text(raw, key, "agent", report, required=False, max_length=50)
        if value is None and f"agent.{key}" not in {p.field for p in report.errors}:
            report.add("agent.required_fields", f"agent.{key}", f"委托办理须填写{zh}",
                       f"A proxy application needs the agent's {key}")
        elif value is not None:
            agent[key] = value
    accepted: list[str] = list(profile.proxy.id_types) if profile is not None else list(ID_TYPES)
    _id_document(raw, "agent", accepted, report, agent)
    if "id_number" in agent and agent["id_number"] == applicant.get("id_number"):
        report.add("agent.same_as_applicant", "agent.id_number", "代办人不能是申请人本人",
                   "The agent cannot be the applicant")
    _phone(raw, "agent", report, agent, required=False)
    return agent


def _phone(raw: dict[str, Any], parent: str, report: Report, into: dict[str, Any], *, required: bool) -> None:
    phone = raw.get("phone")
    if phone is None or phone == "":
        if required:
            report.required(f"{parent}.phone")
    elif isinstance(phone, str) and _PHONE.match(phone.strip()):
        into["phone"] = phone.strip()
    else:
        report.add(f"{parent}.phone.invalid", f"{parent}.phone", "联系电话应为11位手机号码或带区号的固定电话",
                   "The phone must be an 11-digit mobile number or a landline with area code")


def text(raw: dict[str, Any], key: str, parent: str, report: Report, *, required: bool, max_length: int) -> str | None:
    value = raw.get(key)
    path = f"{parent}.{key}"
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            report.required(path)
        return None
    if not isinstance(value, str):
        report.invalid(path, f"{path} 应为字符串", f"'{path}' must be a string")
        return None
    if len(value.strip()) > max_length:
        report.invalid(path, f"{path} 过长（最多{max_length}字）", f"'{path}' is longer than {max_length} characters")
        return None
    return value.strip()
