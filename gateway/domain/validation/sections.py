"""Matters and their sections: each section against its published JSON Schema, then its rules and channel limits."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from jsonschema import ValidationError

from gateway.domain.identity_numbers import IdNumberError, parse_id_number
from gateway.domain.paths import join, parse_date, rows_where, value_for_rows, values_at
from gateway.domain.validation.report import Problem, Report
from gateway.profiles.model import (
    ChannelLimit,
    DateNotFuture,
    DateNotPast,
    DateOrder,
    ForbiddenValue,
    IdNumberValue,
    Profile,
    SectionRule,
    ValuesDiffer,
)
from gateway.profiles.section_schema import required_fields, section_schema, section_validator


def matters_of(body: dict[str, Any], profile: Profile | None, report: Report) -> tuple[list[str], dict[str, int]]:
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


def sections_of(
    body: dict[str, Any],
    profile: Profile | None,
    matters: list[str],
    channel: str | None,
    report: Report,
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
    path = join(base, *error.absolute_path)
    title = _title(schema, list(error.absolute_path))
    kind = error.validator
    if kind == "required" and isinstance(error.instance, dict):
        for name in error.validator_value:
            if name not in error.instance:
                sub = _title(schema, [*error.absolute_path, name]) or name
                yield Problem(
                    "section.field.required", join(path, name), f"请填写“{sub}”", f"'{join(path, name)}' is required"
                )
    elif kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        for name in error.instance:
            if name not in allowed:
                yield Problem(
                    "section.unexpected",
                    join(path, name),
                    f"不支持的字段 {name}",
                    f"Unexpected field '{join(path, name)}'",
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














def _section_rule(
    rule: SectionRule,
    section: dict[str, Any],
    base: str,
    schema: dict[str, Any],
    report: Report,
    today: datetime.date,
) -> None:
    def label(path: str) -> str:
        return _title(schema, [int(p) if p.isdigit() else p for p in path.split(".")]) or path

    def add(path: str, zh: str, en: str, code: str = "section.field.invalid") -> None:
        report.add(code, join(base, path), zh, en)

    if isinstance(rule, DateOrder):
        for rows, first_path, first in values_at(section, rule.earlier):
            found = value_for_rows(section, rule.later, rows)
            start, end = parse_date(first), parse_date(found[1]) if found else None
            if found is not None and start is not None and end is not None and end < start:
                add(found[0], f"“{label(found[0])}”不能早于“{label(first_path)}”",
                    f"'{join(base, found[0])}' is before '{join(base, first_path)}'")
    elif isinstance(rule, DateNotFuture | DateNotPast):
        for _rows, path, value in values_at(section, rule.field):
            day = parse_date(value)
            if day is not None and isinstance(rule, DateNotFuture) and day > today:
                add(path, f"“{label(path)}”不能晚于今天", f"'{join(base, path)}' cannot be in the future")
            if day is not None and isinstance(rule, DateNotPast) and day < today:
                add(path, f"“{label(path)}”已过期", f"'{join(base, path)}' is in the past (expired)")
    elif isinstance(rule, ValuesDiffer):
        for rows, first_path, first in values_at(section, rule.first):
            found = value_for_rows(section, rule.second, rows)
            if found is not None and found[1] == first:
                add(found[0], f"“{label(found[0])}”与“{label(first_path)}”相同，无需变更",
                    f"'{join(base, found[0])}' equals '{join(base, first_path)}'")
    else:
        _row_rule(rule, section, add, today)


def _row_rule(rule: IdNumberValue | ForbiddenValue, section: dict[str, Any], add: Any, today: datetime.date) -> None:
    """Rules on the rows where ``rule.when`` holds: a valid new ID number, a value that may not be changed."""
    for rows in rows_where(rule.when, section):
        found = value_for_rows(section, rule.field, rows)
        if found is None:
            continue
        path, value = found
        if isinstance(rule, ForbiddenValue) and value in rule.in_:
            add(path, rule.message_zh, rule.message_en, rule.code)
        elif isinstance(rule, IdNumberValue):
            try:
                parse_id_number(str(value), today=today)
            except IdNumberError as exc:
                add(path, f"变更后的{exc.message_zh}", f"The new ID number: {exc.message_en}", exc.code.replace(
                    "applicant.id_number", "section.id_number", 1))


def _channel_limit(limit: ChannelLimit, section: dict[str, Any], base: str, channel: str, report: Report) -> None:
    if channel in limit.channels:
        return
    for _rows, path, value in values_at(section, limit.field):
        if isinstance(value, str | int) and value in limit.in_:
            report.add("channel.not_allowed", join(base, path), limit.reason_zh, limit.reason_en)
