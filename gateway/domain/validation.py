"""Validation of ``POST /v1/cases`` bodies against a region profile: every problem at once, never an exception.

Order of work: envelope -> applicant (ID number per GB 11643, derived birth date and sex) -> agent -> matters ->
each section against its published JSON Schema -> the profile's rules (section rules, channel limits, exclusions,
prerequisites, eligibility). Pure: no I/O, the registry is loaded at start-up; the section validators are compiled
once per profile and cached.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema import ValidationError

from gateway.domain.identity_numbers import IdNumberError, ResidentIdNumber, age_on, parse_id_number
from gateway.domain.retirement import has_reached_retirement, retirement_month
from gateway.profiles.loader import ProfileRegistry
from gateway.profiles.model import (
    ChannelLimit,
    DateNotFuture,
    DateNotPast,
    DateOrder,
    HouseholdRegistration,
    Material,
    MatterSpec,
    MinimumAge,
    Profile,
    SectionRule,
    Statement,
    UnderRetirementAge,
    ValuesDiffer,
)
from gateway.profiles.section_schema import required_fields, section_schema, section_validator

__all__ = ["Application", "Problem", "ValidationOutcome", "materials_for", "validate_application"]

CHANNELS = ("online", "window")
DELIVERIES = ("online", "post", "window")
ID_TYPES = ("resident_id", "hmt_residence_permit", "other")
# attachments and materials_received are checked by gateway/domain/attachments.py
_TOP_LEVEL = ("profile", "channel", "applicant", "agent", "matters", "sections", "delivery", "attachments",
              "materials_received")
# Mainland mobile, or a landline with area code (the Guangxi form asks for 联系电话, not only a mobile).
_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
_DIVISION = re.compile(r"^\d{6}$")
_POSTCODE = re.compile(r"^\d{6}$")
_APPLICANT_TEXT = {  # optional text fields of the seeds' forms and their maximum length
    "ethnicity": 20,
    "political_status": 20,
    "household_address": 200,
    "residence_address": 200,
}


@dataclass(frozen=True)
class Problem:
    code: str
    field: str
    message_zh: str
    message_en: str


@dataclass(frozen=True)
class Application:
    profile: str
    channel: Literal["online", "window"]
    delivery: Literal["online", "post", "window"]
    applicant: dict[str, Any]
    agent: dict[str, Any] | None
    matters: list[str]
    sections: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ValidationOutcome:
    application: Application | None
    errors: list[Problem]
    warnings: list[Problem]


@dataclass
class _Report:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def add(self, code: str, path: str, zh: str, en: str) -> None:
        problem = Problem(code, path, zh, en)
        if problem not in self.errors:
            self.errors.append(problem)

    def warn(self, code: str, path: str, zh: str, en: str) -> None:
        self.warnings.append(Problem(code, path, zh, en))

    def ignored(self, path: str) -> None:
        # The contract names the applicant's optional fields only as "those of the seeds' forms": a field we do
        # not know is reported on the case and left out, not a reason to turn the applicant away.
        self.warn("field.ignored", path, f"未识别的字段 {path} 已忽略", f"Unrecognised field '{path}' was ignored")

    def required(self, path: str) -> None:
        self.add("field.required", path, f"缺少必填项 {path}", f"'{path}' is required")

    def invalid(self, path: str, zh: str, en: str) -> None:
        self.add("field.invalid", path, zh, en)


def validate_application(body: object, registry: ProfileRegistry, *, today: datetime.date) -> ValidationOutcome:
    report = _Report()
    if not isinstance(body, dict):
        report.add("body.invalid", "", "请求体应为JSON对象", "The request body must be a JSON object")
        return ValidationOutcome(None, report.errors, [])
    for key in body:
        if key not in _TOP_LEVEL:
            report.ignored(str(key))

    profile = _profile(body, registry, report)
    channel = _choice(body, "channel", CHANNELS, report, required=True)
    delivery = _choice(body, "delivery", DELIVERIES, report, required=False)
    applicant, ident = _applicant(body, profile, report, today)
    agent = _agent(body, profile, ident, report, today)
    matters, index = _matters(body, profile, report)
    sections = _sections(body, profile, matters, channel, report, today)
    if profile is not None:
        _selection_rules(profile, matters, index, sections, report)
        if ident is not None:
            _eligibility(profile, matters, index, applicant, ident, sections, report, today)

    if report.errors or profile is None or channel is None:
        return ValidationOutcome(None, report.errors, report.warnings)
    application = Application(
        profile=profile.code,
        channel=channel,  # type: ignore[arg-type]  # checked against CHANNELS
        delivery=delivery or ("window" if channel == "window" else "online"),  # type: ignore[arg-type]
        applicant=applicant,
        agent=agent,
        matters=matters,
        sections=sections,
    )
    return ValidationOutcome(application, [], report.warnings)


# ---- envelope ---------------------------------------------------------------------------------------------------
def _profile(body: dict[str, Any], registry: ProfileRegistry, report: _Report) -> Profile | None:
    code = body.get("profile")
    if code is None:
        report.required("profile")
        return None
    if not isinstance(code, str):
        report.invalid("profile", "profile 应为字符串", "'profile' must be a string")
        return None
    try:
        return registry.get(code)
    except KeyError:
        known = ", ".join(registry.codes())
        report.add(
            "profile.unknown",
            "profile",
            f"未知的地区配置 {code}（可选：{known}）",
            f"Unknown profile '{code}' (known: {known})",
        )
        return None


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], report: _Report, *, required: bool) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            report.required(key)
        return None
    if value not in allowed:
        report.invalid(
            key, f"{key} 应为以下之一：{'、'.join(allowed)}", f"'{key}' must be one of: {', '.join(allowed)}"
        )
        return None
    return str(value)


# ---- applicant and agent ----------------------------------------------------------------------------------------
def _applicant(
    body: dict[str, Any], profile: Profile | None, report: _Report, today: datetime.date
) -> tuple[dict[str, Any], ResidentIdNumber | None]:
    raw = body.get("applicant")
    if raw is None:
        report.required("applicant")
        return {}, None
    if not isinstance(raw, dict):
        report.invalid("applicant", "申请人信息应为对象", "'applicant' must be an object")
        return {}, None
    known = {
        "name",
        "id_type",
        "id_number",
        "phone",
        "sex",
        "birth_date",
        "postcode",
        "household_division_code",
        "residence_division_code",
        *_APPLICANT_TEXT,
    }
    for key in raw:
        if key not in known:
            report.ignored(f"applicant.{key}")
    applicant: dict[str, Any] = {}
    name = _text(raw, "name", "applicant", report, required=True, max_length=50)
    if name is not None:
        applicant["name"] = name

    id_type = raw.get("id_type")
    ident: ResidentIdNumber | None = None
    if id_type is None:
        report.required("applicant.id_type")
    elif id_type not in ID_TYPES:
        report.invalid(
            "applicant.id_type",
            f"证件类型应为以下之一：{'、'.join(ID_TYPES)}",
            f"'applicant.id_type' must be one of: {', '.join(ID_TYPES)}",
        )
    elif profile is not None and id_type not in profile.applicant_id_types:
        report.add(
            "applicant.id_type.unsupported",
            "applicant.id_type",
            "该证件类型不能在线办理本“一件事”，请持居民身份证或港澳台居民居住证办理",
            f"ID type '{id_type}' is not accepted here; use a resident ID card or an HMT residence permit",
        )
    else:
        applicant["id_type"] = id_type

    number = raw.get("id_number")
    if number is None or number == "":
        report.required("applicant.id_number")
    elif not isinstance(number, str):
        report.invalid("applicant.id_number", "证件号码应为字符串", "'applicant.id_number' must be a string")
    elif applicant.get("id_type") in ("resident_id", "hmt_residence_permit"):
        try:
            ident = parse_id_number(number, kind=applicant["id_type"], today=today)
        except IdNumberError as exc:
            report.add(exc.code, "applicant.id_number", exc.message_zh, exc.message_en)
        else:
            applicant.update(
                id_number=ident.number,
                birth_date=ident.birth_date.isoformat(),
                sex=ident.sex,
                division_code=ident.division_code,
            )
            if not ident.division_known:
                report.warnings.append(
                    Problem(
                        "applicant.id_number.division_unknown",
                        "applicant.id_number",
                        f"身份证号码中的行政区划代码 {ident.division_code} 未能识别，请核对",
                        f"The division code {ident.division_code} of the ID number is not known; please check it",
                    )
                )

    phone = raw.get("phone")
    if phone is None or phone == "":
        report.required("applicant.phone")
    elif not isinstance(phone, str) or not _PHONE.match(phone.strip()):
        report.add(
            "applicant.phone.invalid",
            "applicant.phone",
            "联系电话应为11位手机号码或带区号的固定电话",
            "The phone must be an 11-digit mobile number or a landline with area code",
        )
    else:
        applicant["phone"] = phone.strip()

    _optional_applicant_fields(raw, applicant, ident, report)
    return applicant, ident


def _optional_applicant_fields(
    raw: dict[str, Any], applicant: dict[str, Any], ident: ResidentIdNumber | None, report: _Report
) -> None:
    sex = raw.get("sex")
    if sex is not None:
        if sex not in ("male", "female"):
            report.invalid("applicant.sex", "性别应为 male 或 female", "'applicant.sex' must be 'male' or 'female'")
        elif ident is not None and sex != ident.sex:
            report.add(
                "applicant.sex.mismatch",
                "applicant.sex",
                "性别与身份证号码不一致",
                "The sex does not match the ID number",
            )
    birth = raw.get("birth_date")
    if birth is not None:
        parsed = _date(birth)
        if parsed is None:
            report.invalid(
                "applicant.birth_date", "出生日期应为YYYY-MM-DD格式", "'applicant.birth_date' must be a date YYYY-MM-DD"
            )
        elif ident is not None and parsed != ident.birth_date:
            report.add(
                "applicant.birth_date.mismatch",
                "applicant.birth_date",
                "出生日期与身份证号码不一致",
                "The birth date does not match the ID number",
            )
    for key, pattern, label in (
        ("postcode", _POSTCODE, "邮政编码应为6位数字"),
        ("household_division_code", _DIVISION, "户籍地行政区划代码应为6位数字"),
        ("residence_division_code", _DIVISION, "居住地行政区划代码应为6位数字"),
    ):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, str) and pattern.match(value):
            applicant[key] = value
        else:
            report.invalid(f"applicant.{key}", label, f"'applicant.{key}' must be 6 digits")
    for key, max_length in _APPLICANT_TEXT.items():
        text = _text(raw, key, "applicant", report, required=False, max_length=max_length)
        if text is not None:
            applicant[key] = text


def _agent(
    body: dict[str, Any],
    profile: Profile | None,
    applicant_ident: ResidentIdNumber | None,
    report: _Report,
    today: datetime.date,
) -> dict[str, Any] | None:
    raw = body.get("agent")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        report.invalid("agent", "代办人信息应为对象", "'agent' must be an object")
        return None
    if profile is not None and not profile.proxy.allowed:
        report.add("agent.not_allowed", "agent", "本地区不支持委托代办", "Proxy applications are not accepted here")
    for key in raw:
        if key not in ("name", "id_type", "id_number", "relationship", "phone"):
            report.ignored(f"agent.{key}")
    agent: dict[str, Any] = {}
    for key, zh in (
        ("name", "代办人姓名"),
        ("id_type", "代办人证件类型"),
        ("id_number", "代办人证件号码"),
        ("relationship", "与申请人关系"),
    ):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            report.add(
                "agent.required_fields",
                f"agent.{key}",
                f"委托办理须填写{zh}",
                f"A proxy application needs the agent's {key.replace('_', ' ')}",
            )
        else:
            agent[key] = value.strip()
    for key in ("name", "relationship"):
        if len(agent.get(key, "")) > 50:
            report.invalid(f"agent.{key}", "内容过长（最多50字）", f"'agent.{key}' is longer than 50 characters")
    id_types = profile.proxy.id_types if profile is not None else ["resident_id", "hmt_residence_permit"]
    id_type = agent.get("id_type")
    if id_type is not None and id_type not in id_types:
        report.add(
            "agent.id_type.unsupported",
            "agent.id_type",
            "代办人证件类型不受支持，请使用居民身份证",
            f"Agent ID type '{id_type}' is not accepted",
        )
    elif id_type is not None and "id_number" in agent:
        try:
            ident = parse_id_number(agent["id_number"], kind=id_type, today=today)
        except IdNumberError as exc:
            report.add(
                exc.code.replace("applicant.", "agent.", 1),
                "agent.id_number",
                exc.message_zh.replace("身份证", "代办人身份证", 1),
                f"Agent: {exc.message_en}",
            )
        else:
            agent["id_number"] = ident.number
            if applicant_ident is not None and ident.number == applicant_ident.number:
                report.add(
                    "agent.same_as_applicant",
                    "agent.id_number",
                    "代办人不能是申请人本人",
                    "The agent cannot be the applicant",
                )
    phone = raw.get("phone")
    if phone is not None:
        if isinstance(phone, str) and _PHONE.match(phone.strip()):
            agent["phone"] = phone.strip()
        else:
            report.add(
                "agent.phone.invalid",
                "agent.phone",
                "代办人联系电话格式不正确",
                "The agent's phone number is not valid",
            )
    return agent


def _text(
    raw: dict[str, Any], key: str, parent: str, report: _Report, *, required: bool, max_length: int
) -> str | None:
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


# ---- matters and sections ----------------------------------------------------------------------------------------
def _matters(body: dict[str, Any], profile: Profile | None, report: _Report) -> tuple[list[str], dict[str, int]]:
    """Selected valid codes in profile order, and each code's position in the body (for field paths)."""
    raw = body.get("matters")
    if raw is None:
        report.required("matters")
        return [], {}
    if not isinstance(raw, list):
        report.invalid("matters", "matters 应为事项代码列表", "'matters' must be a list of matter codes")
        return [], {}
    if not raw:
        report.add("matters.empty", "matters", "请至少选择一个事项", "Select at least one matter")
        return [], {}
    index: dict[str, int] = {}
    for i, code in enumerate(raw):
        if not isinstance(code, str) or (profile is not None and not profile.has_matter(code)):
            known = "、".join(m.code for m in profile.matters) if profile else ""
            report.add(
                "matters.unknown",
                f"matters.{i}",
                f"未知的事项代码 {code!r}（可选：{known}）",
                f"Unknown matter code {code!r}",
            )
        elif code in index:
            report.add(
                "matters.duplicate", f"matters.{i}", f"事项 {code} 重复选择", f"Matter '{code}' is selected twice"
            )
        else:
            index[code] = i
    if profile is None:
        return list(index), index
    return [m.code for m in profile.matters if m.code in index], index


def _sections(
    body: dict[str, Any],
    profile: Profile | None,
    matters: list[str],
    channel: str | None,
    report: _Report,
    today: datetime.date,
) -> dict[str, dict[str, Any]]:
    raw = body.get("sections", {})
    if not isinstance(raw, dict):
        report.invalid(
            "sections", "sections 应为以事项代码为键的对象", "'sections' must be an object keyed by matter code"
        )
        raw = {}
    for key in raw:
        if key not in matters:
            report.add(
                "section.unexpected",
                f"sections.{key}",
                f"未选择事项 {key}，不应填写其信息",
                f"Section '{key}' is given but the matter is not selected (or unknown)",
            )
    sections: dict[str, dict[str, Any]] = {}
    if profile is None:
        return sections
    for code in matters:
        matter = profile.matter(code)
        schema = section_schema(profile, matter)
        base = f"sections.{code}"
        if code not in raw:
            if required_fields(schema):
                report.add(
                    "section.missing",
                    base,
                    f"已选择“{matter.name_zh}”，请填写该事项的信息",
                    f"'{code}' is selected but its section is missing",
                )
            sections[code] = {}
            continue
        value = raw[code]
        for error in section_validator(profile, matter).iter_errors(value):
            for problem in _schema_problems(error, schema, base):
                report.add(problem.code, problem.field, problem.message_zh, problem.message_en)
        if not isinstance(value, dict):
            continue
        sections[code] = value
        for rule in matter.rules:
            _section_rule(rule, value, base, schema, report, today)
        if channel is not None:
            for limit in matter.channel_limits:
                _channel_limit(limit, value, base, channel, report)
    return sections


def _schema_problems(error: ValidationError, schema: dict[str, Any], base: str) -> Iterator[Problem]:
    path = _join(base, *error.absolute_path)
    title = _title(schema, list(error.absolute_path))
    kind = error.validator
    if kind == "required" and isinstance(error.instance, dict):
        for name in error.validator_value:
            if name not in error.instance:
                sub = _title(schema, [*error.absolute_path, name]) or name
                yield Problem(
                    "section.field.required", _join(path, name), f"请填写“{sub}”", f"'{_join(path, name)}' is required"
                )
    elif kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        for name in error.instance:
            if name not in allowed:
                yield Problem(
                    "section.unexpected",
                    _join(path, name),
                    f"不支持的字段 {name}",
                    f"Unexpected field '{_join(path, name)}'",
                )
    elif kind in ("oneOf", "anyOf") and _is_choice(error.validator_value):
        options = [(o["const"], o.get("title", o["const"])) for o in error.validator_value]
        labels = "、".join(f"{label}({value})" for value, label in options)
        codes = ", ".join(str(value) for value, _label in options)
        yield Problem(
            "section.field.invalid",
            path,
            f"“{title or path}”应为以下选项之一：{labels}",
            f"'{path}' must be one of: {codes}",
        )
    elif kind in ("oneOf", "anyOf") and error.context:
        yield from _best_branch(error, schema, base)
    elif kind == "format" and error.validator_value == "date":
        yield Problem(
            "section.field.invalid",
            path,
            f"“{title or path}”应为YYYY-MM-DD格式的日期",
            f"'{path}' must be a date YYYY-MM-DD",
        )
    elif kind == "const" and error.validator_value is True:
        yield Problem("section.field.invalid", path, f"请确认“{title or path}”", f"'{path}' must be confirmed (true)")
    else:
        yield Problem(
            "section.field.invalid",
            path,
            f"“{title or path}”填写不正确：{_ZH.get(kind, '不符合要求')}",
            f"'{path}' is invalid: {error.message}",
        )


_ZH = {
    "type": "类型不正确",
    "pattern": "格式不正确",
    "format": "格式不正确",
    "minimum": "数值过小",
    "exclusiveMinimum": "数值过小",
    "maximum": "数值过大",
    "minLength": "内容过短",
    "maxLength": "内容过长",
    "minItems": "条目过少",
    "maxItems": "条目过多",
    "uniqueItems": "存在重复选项",
    "contains": "缺少必选项",
}


def _is_choice(options: Any) -> bool:
    return isinstance(options, list) and all(isinstance(o, dict) and "const" in o for o in options)


def _best_branch(error: ValidationError, schema: dict[str, Any], base: str) -> Iterator[Problem]:
    """For a row that fits none of its variants, report the variant it most resembles (fewest wrong choices)."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    if not branches:
        return

    def score(errors: list[ValidationError]) -> tuple[int, int]:
        wrong_choice = sum(1 for e in errors if e.validator in ("const", "enum") or _is_choice(e.validator_value))
        return wrong_choice, len(errors)

    best = min(branches.values(), key=score)
    for sub in best:
        yield from _schema_problems(sub, schema, base)


def _title(schema: dict[str, Any], parts: list[Any]) -> str | None:
    nodes = [schema]
    title = None
    for part in parts:
        nxt: list[dict[str, Any]] = []
        for node in nodes:
            for candidate in [node, *node.get("oneOf", [])]:
                if not isinstance(candidate, dict):
                    continue
                if isinstance(part, int) and isinstance(candidate.get("items"), dict):
                    nxt.append(candidate["items"])
                elif isinstance(part, str) and part in candidate.get("properties", {}):
                    nxt.append(candidate["properties"][part])
        if not nxt:
            return title
        nodes = nxt
        title = next((n["title"] for n in nodes if "title" in n), title)
    return title


def _join(base: str, *parts: Any) -> str:
    return ".".join([base, *(str(p) for p in parts)]) if base else ".".join(str(p) for p in parts)


def _values_at(data: Any, dotted: str) -> Iterator[tuple[tuple[int, ...], str, Any]]:
    """(row indices used for ``*``, concrete relative path, value) for every value present at ``dotted``."""

    def walk(node: Any, parts: list[str], rows: tuple[int, ...], path: list[str]) -> Iterator[Any]:
        if not parts:
            yield rows, ".".join(path), node
            return
        head, rest = parts[0], parts[1:]
        if head == "*":
            if isinstance(node, list):
                for i, item in enumerate(node):
                    yield from walk(item, rest, (*rows, i), [*path, str(i)])
        elif isinstance(node, dict) and head in node:
            yield from walk(node[head], rest, rows, [*path, head])

    yield from walk(data, dotted.split("."), (), [])


def _value_for_rows(data: Any, dotted: str, rows: tuple[int, ...]) -> tuple[str, Any] | None:
    for other_rows, path, value in _values_at(data, dotted):
        if other_rows == rows[: len(other_rows)]:
            return path, value
    return None


def _date(value: Any) -> datetime.date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


def _section_rule(
    rule: SectionRule,
    section: dict[str, Any],
    base: str,
    schema: dict[str, Any],
    report: _Report,
    today: datetime.date,
) -> None:
    def label(path: str) -> str:
        return _title(schema, [int(p) if p.isdigit() else p for p in path.split(".")]) or path

    if isinstance(rule, DateOrder):
        for rows, first_path, first in _values_at(section, rule.earlier):
            found = _value_for_rows(section, rule.later, rows)
            if found is None:
                continue
            second_path, second = found
            start, end = _date(first), _date(second)
            if start is not None and end is not None and end < start:
                report.add(
                    "section.field.invalid",
                    _join(base, second_path),
                    f"“{label(second_path)}”不能早于“{label(first_path)}”",
                    f"'{_join(base, second_path)}' is before '{_join(base, first_path)}'",
                )
    elif isinstance(rule, DateNotFuture | DateNotPast):
        for _rows, path, value in _values_at(section, rule.field):
            day = _date(value)
            if day is None:
                continue
            if isinstance(rule, DateNotFuture) and day > today:
                report.add(
                    "section.field.invalid",
                    _join(base, path),
                    f"“{label(path)}”不能晚于今天",
                    f"'{_join(base, path)}' cannot be in the future",
                )
            if isinstance(rule, DateNotPast) and day < today:
                report.add(
                    "section.field.invalid",
                    _join(base, path),
                    f"“{label(path)}”已过期",
                    f"'{_join(base, path)}' is in the past (expired)",
                )
    elif isinstance(rule, ValuesDiffer):
        for rows, first_path, first in _values_at(section, rule.first):
            found = _value_for_rows(section, rule.second, rows)
            if found is not None and found[1] == first:
                report.add(
                    "section.field.invalid",
                    _join(base, found[0]),
                    f"“{label(found[0])}”与“{label(first_path)}”相同，无需变更",
                    f"'{_join(base, found[0])}' equals '{_join(base, first_path)}'",
                )


def _channel_limit(limit: ChannelLimit, section: dict[str, Any], base: str, channel: str, report: _Report) -> None:
    if channel in limit.channels:
        return
    for _rows, path, value in _values_at(section, limit.field):
        if isinstance(value, str | int) and value in limit.in_:
            report.add("channel.not_allowed", _join(base, path), limit.reason_zh, limit.reason_en)


# ---- rules across matters and eligibility ---------------------------------------------------------------------
def _selection_rules(
    profile: Profile, matters: list[str], index: dict[str, int], sections: dict[str, dict[str, Any]], report: _Report
) -> None:
    selected = set(matters)
    for first, second in profile.mutually_exclusive:
        if first in selected and second in selected:
            later = max(index[first], index[second])
            a, b = profile.matter(first), profile.matter(second)
            report.add(
                "matters.mutually_exclusive",
                f"matters.{later}",
                f"“{a.name_zh}”和“{b.name_zh}”不可同时选办",
                f"'{first}' and '{second}' cannot both be selected",
            )
    for code in matters:
        prerequisite = profile.matter(code).prerequisite
        if prerequisite is None or selected.intersection(prerequisite.any_of):
            continue
        held = sections.get(code, {}).get(prerequisite.held_field)
        if prerequisite.or_already_held and isinstance(held, list) and set(prerequisite.any_of).intersection(held):
            continue
        names = "、".join(profile.matter(c).name_zh for c in prerequisite.any_of)
        report.add(
            "matters.prerequisite_missing",
            f"matters.{index[code]}",
            f"办理“{profile.matter(code).name_zh}”须同时选办或已办理以下事项之一：{names}",
            f"'{code}' needs one of {', '.join(prerequisite.any_of)} selected in this case or already held",
        )


def _eligibility(
    profile: Profile,
    matters: list[str],
    index: dict[str, int],
    applicant: dict[str, Any],
    ident: ResidentIdNumber,
    sections: dict[str, dict[str, Any]],
    report: _Report,
    today: datetime.date,
) -> None:
    years, _months = age_on(ident.birth_date, today)
    for code in matters:
        matter = profile.matter(code)
        for check in matter.eligibility:
            if isinstance(check, UnderRetirementAge):
                _retirement(profile, matter, ident, report, today)
            elif isinstance(check, MinimumAge) and years < check.years:
                report.add(
                    "applicant.age.under_minimum",
                    "applicant.id_number",
                    f"办理“{matter.name_zh}”须年满{check.years}周岁",
                    f"'{code}' requires age {check.years} or over",
                )
            elif isinstance(check, HouseholdRegistration):
                in_region, path = _household_in_region(profile, applicant, ident)
                if not in_region:
                    report.add(
                        "eligibility.household_registration",
                        path,
                        f"办理“{matter.name_zh}”须具有{profile.name_zh}户籍（港澳台居民须在{profile.name_zh}居住）",
                        f"'{code}' requires household registration in {profile.name_en} "
                        "(HK/Macau/Taiwan residents: residence there)",
                    )
            elif isinstance(check, Statement):
                value = sections.get(code, {}).get(check.field)
                if isinstance(value, bool) and value != check.must_be:
                    report.add(check.code, f"sections.{code}.{check.field}", check.message_zh, check.message_en)


def _retirement(
    profile: Profile, matter: MatterSpec, ident: ResidentIdNumber, report: _Report, today: datetime.date
) -> None:
    female_age = profile.female_original_retirement_age
    if has_reached_retirement(ident.birth_date, ident.sex, today, female_original_age=female_age):
        year, month = retirement_month(ident.birth_date, ident.sex, female_original_age=female_age)
        report.add(
            "applicant.age.over_retirement",
            "applicant.id_number",
            f"申请人已于{year}年{month}月达到法定退休年龄，不能办理“{matter.name_zh}”",
            f"The applicant reached the statutory retirement age in {year}-{month:02d}; "
            f"'{matter.code}' is not possible",
        )


def _household_in_region(profile: Profile, applicant: dict[str, Any], ident: ResidentIdNumber) -> tuple[bool, str]:
    """Household registration from the stated division code or address, else the ID number's division code.

    HK/Macau/Taiwan permit holders have no household registration here; the seed lets them enrol where they live.
    """
    prefix = profile.division_prefix
    kind = "residence" if ident.permit_region is not None else "household"
    code = applicant.get(f"{kind}_division_code")
    if code:
        return code.startswith(prefix), f"applicant.{kind}_division_code"
    address = applicant.get(f"{kind}_address")
    if address:
        return any(name in address for name in profile.region_names), f"applicant.{kind}_address"
    if ident.permit_region is not None:
        return False, "applicant.residence_address"
    return ident.division_code.startswith(prefix), "applicant.id_number"


# ---- materials -----------------------------------------------------------------------------------------------
def materials_for(profile: Profile, application: Application) -> list[dict[str, Any]]:
    """The application's materials: common, per selected matter (conditions evaluated), and the proxy's.

    ``upload`` is False for what the channel does not take (online: what an e-license proves, 证件免交).
    """
    chosen: list[tuple[str | None, Material]] = [(None, m) for m in profile.common_materials]
    if application.agent is not None:
        chosen.extend((None, m) for m in profile.proxy.materials)
    for code in application.matters:
        section = application.sections.get(code, {})
        for material in profile.matter(code).materials:
            condition = material.when
            if condition is None or any(v in condition.in_ for _r, _p, v in _values_at(section, condition.field)):
                chosen.append((code, material))
    result = []
    for matter, material in chosen:
        if application.channel not in material.channels and material.satisfied_by is None:
            continue
        result.append(
            {
                "matter": matter,
                "code": material.code,
                "name_zh": material.name_zh,
                "name_en": material.name_en,
                "required": material.required or material.when is not None,
                "when_zh": material.when_zh,
                "satisfied_by": material.satisfied_by,
                "upload": material.uploaded(application.channel),
                "spec": material.spec,
            }
        )
    return result
