"""Validation of ``POST /v1/cases`` bodies against a region profile: every problem at once, never an exception.

Order of work: envelope -> applicant and agent (``people``: every identity document of 附件2) -> matters and each
section against its published JSON Schema, then its rules (``sections``) -> rules across matters, accepted ID types,
eligibility and time-sensitive notices (``rules``). Pure: no I/O; the section validators are compiled once per profile
and cached. Errors are de-duplicated and capped (``report.MAX_ERRORS``).
"""

from __future__ import annotations

import datetime
from typing import Any

from gateway.domain.validation.people import agent_of, applicant_of
from gateway.domain.validation.report import Application, Problem, Report, ValidationOutcome
from gateway.domain.validation.rules import accepted_id_types, eligibility, notice_warnings, selection_rules
from gateway.domain.validation.sections import matters_of, sections_of
from gateway.profiles.loader import ProfileRegistry
from gateway.profiles.model import Profile

__all__ = ["Application", "Problem", "ValidationOutcome", "validate_application"]

CHANNELS = ("online", "window")
DELIVERIES = ("online", "post", "window")
# attachments and materials_received are checked by gateway/domain/attachments.py
_TOP_LEVEL = ("profile", "channel", "applicant", "agent", "matters", "sections", "delivery", "attachments",
              "materials_received")


def validate_application(body: object, registry: ProfileRegistry, *, today: datetime.date,
                         register_follows: bool = False) -> ValidationOutcome:
    """`register_follows`: the household register will be retrieved as an e-license (an online case with the
    applicant's assertion), so an undeclared 户籍 is left for it to decide."""
    report = Report(today)
    if not isinstance(body, dict):
        report.add("body.invalid", "", "请求体应为JSON对象", "The request body must be a JSON object")
        return ValidationOutcome(None, report.errors, [])
    for key in body:
        if key not in _TOP_LEVEL:
            report.ignored(str(key))

    profile = _profile(body, registry, report)
    channel = _choice(body, "channel", CHANNELS, report, required=True)
    delivery = _choice(body, "delivery", DELIVERIES, report, required=False)
    applicant, ident = applicant_of(body, profile, report)
    agent = agent_of(body, profile, applicant, report)
    matters, index = matters_of(body, profile, report)
    sections = sections_of(body, profile, matters, channel, report, today)
    if profile is not None:
        selection_rules(profile, matters, index, sections, report)
        accepted_id_types(profile, matters, index, applicant.get("id_type"), report)
        if ident is not None:
            eligibility(profile, matters, applicant, ident, sections, report, register_follows=register_follows)
        notice_warnings(profile, matters, sections, today, report)

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


def _profile(body: dict[str, Any], registry: ProfileRegistry, report: Report) -> Profile | None:
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
        report.add("profile.unknown", "profile", f"未知的地区配置 {code}（可选：{known}）",
                   f"Unknown profile '{code}' (known: {known})")
        return None


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], report: Report, *, required: bool) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            report.required(key)
        return None
    if value not in allowed:
        report.invalid(key, f"{key} 应为以下之一：{'、'.join(allowed)}",
                       f"'{key}' must be one of: {', '.join(allowed)}")
        return None
    return str(value)
