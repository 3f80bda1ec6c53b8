"""Loading region profiles: YAML -> Profile, with every consistency problem reported at once.

A broken profile never starts the gateway: ``ProfileRegistry.load_dir`` raises ``ProfileError`` with precise
messages (``matters[3] (card): operation 'social_card' is not offered by adapter 'hrss'``) rather than letting a typo
surface as a 500 on the first application.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from jsonschema import Draft202012Validator, SchemaError
from pydantic import ValidationError

from gateway.profiles.model import Department, MatterSpec, Profile, Statement
from gateway.profiles.section_schema import build_section_schema

DEPARTMENTS: tuple[str, ...] = get_args(Department)


class ProfileError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def load_profile(path: Path, *, known_operations: Mapping[str, set[str]] | None = None) -> Profile:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ProfileError([f"{path}: invalid YAML: {exc}"]) from exc
    if not isinstance(document, dict):
        raise ProfileError([f"{path}: the top level must be a mapping (code, name_zh, matters, ...)"])
    try:
        profile = Profile.model_validate(document)
    except ValidationError as exc:
        raise ProfileError([f"{path}: {_where(err['loc'], document)}: {err['msg']}" for err in exc.errors()]) from exc
    problems = [f"{path}: {problem}" for problem in consistency_problems(profile, known_operations)]
    if problems:
        raise ProfileError(problems)
    return profile


def consistency_problems(profile: Profile, known_operations: Mapping[str, set[str]] | None = None) -> list[str]:
    """What the model alone cannot see: references between matters, adapters, schemas, time limits."""
    problems: list[str] = []
    codes = [m.code for m in profile.matters]
    seen: set[str] = set()
    for index, code in enumerate(codes):
        if code in seen:
            problems.append(f"matters[{index}]: duplicate matter code '{code}'")
        seen.add(code)

    for index, matter in enumerate(profile.matters):
        problems.extend(
            f"matters[{index}] ({matter.code}): {p}" for p in _matter_problems(profile, matter, known_operations)
        )

    for index, (first, second) in enumerate(profile.mutually_exclusive):
        for code in (first, second):
            if code not in seen:
                problems.append(f"mutually_exclusive[{index}]: names unknown matter '{code}'")
        if first == second:
            problems.append(f"mutually_exclusive[{index}]: a matter cannot exclude itself ('{first}')")

    cycle = _prerequisite_cycle(profile)
    if cycle:
        problems.append("prerequisites form a cycle: " + " -> ".join(cycle))

    problems.extend(_statutory_problems(profile))
    return problems


def _statutory_problems(profile: Profile) -> Iterator[str]:
    if profile.statutory_formula != "sum_of_matters":
        return
    missing = [m.code for m in profile.matters if m.statutory_working_days is None]
    if missing:
        yield f"statutory_formula sum_of_matters: matters without statutory_working_days: {', '.join(missing)}"
    elif profile.statutory_working_days is not None:
        total = sum(m.statutory_working_days or 0 for m in profile.matters)
        if total != profile.statutory_working_days:
            yield (f"statutory_formula sum_of_matters: the matters' statutory_working_days add up to {total}, "
                   f"not the stated whole-case {profile.statutory_working_days}")


def _matter_problems(
    profile: Profile, matter: MatterSpec, known_operations: Mapping[str, set[str]] | None
) -> Iterator[str]:
    # A new department arrives with its installed adapter: the built-in list is not the limit.
    new_department_with_adapter = known_operations is not None and matter.adapter in known_operations
    if matter.department not in DEPARTMENTS and not new_department_with_adapter:
        yield (f"unknown department '{matter.department}' (known: {', '.join(DEPARTMENTS)}; a new department needs "
               "its adapter installed)")
    if known_operations is not None:
        if matter.adapter not in known_operations:
            yield f"unknown adapter '{matter.adapter}' (installed: {', '.join(sorted(known_operations)) or 'none'})"
        elif matter.operation not in known_operations[matter.adapter]:
            yield f"operation '{matter.operation}' is not offered by adapter '{matter.adapter}'"

    for id_type in matter.id_types or []:
        if id_type not in profile.applicant_id_types:
            yield f"id_types: '{id_type}' is not among the profile's applicant_id_types"
    for notice in matter.notices:
        when = notice.cutoff.when if notice.cutoff is not None else None
        if when is not None and not _path_exists(build_section_schema(profile, matter), when.field):
            yield f"notice cut-off condition names unknown section field '{when.field}'"
    if matter.prerequisite is not None:
        for code in matter.prerequisite.any_of:
            if not profile.has_matter(code):
                yield f"prerequisite names unknown matter '{code}'"
        if matter.prerequisite.held_field in matter.section.get("properties", {}):
            yield f"prerequisite held_field '{matter.prerequisite.held_field}' clashes with a section property"

    promised = profile.promised_working_days
    for channel in ("online", "window"):
        limit = getattr(matter.time_limits, channel)
        if promised is not None and limit > promised:
            yield f"time_limits.{channel} = {limit} exceeds the whole-case promise of {promised} working days"

    schema = build_section_schema(profile, matter)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        location = "/".join(str(part) for part in exc.path) or "(root)"
        yield f"section is not a valid JSON Schema at {location}: {exc.message}"
        return

    for limit in matter.channel_limits:
        if not _path_exists(schema, limit.field):
            yield f"channel limit names unknown section field '{limit.field}'"
    for rule in matter.rules:
        for field in _rule_fields(rule):
            if not _path_exists(schema, field):
                yield f"rule {rule.rule} names unknown section field '{field}'"
    for check in matter.eligibility:
        if isinstance(check, Statement):
            prop = schema.get("properties", {}).get(check.field)
            if prop is None:
                yield f"statement names unknown section field '{check.field}'"
            elif prop.get("type") != "boolean":
                yield f"statement field '{check.field}' must be a boolean"
            elif check.field not in schema.get("required", []):
                yield f"statement field '{check.field}' must be required (with a default), or it is never stated"
    for material in matter.materials:
        if material.when is not None and not _path_exists(schema, material.when.field):
            yield f"material '{material.code}' condition names unknown section field '{material.when.field}'"


def _rule_fields(rule: Any) -> list[str]:
    fields = [getattr(rule, name) for name in ("earlier", "later", "field", "first", "second") if hasattr(rule, name)]
    return [*fields, rule.when.field] if hasattr(rule, "when") else fields


def _path_exists(schema: dict[str, Any], dotted: str) -> bool:
    """Does ``a.*.b`` name a property of the schema (rows through ``items``, variants through ``oneOf``)?"""
    nodes = [schema]
    for part in dotted.split("."):
        found: list[dict[str, Any]] = []
        for node in _variants(nodes):
            if part == "*":
                if isinstance(node.get("items"), dict):
                    found.append(node["items"])
            elif part in node.get("properties", {}):
                found.append(node["properties"][part])
        if not found:
            return False
        nodes = found
    return True


def _variants(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        for key in ("oneOf", "anyOf"):
            for branch in node.get(key, []):
                if isinstance(branch, dict):
                    yield branch


def _prerequisite_cycle(profile: Profile) -> list[str]:
    edges = {
        m.code: [c for c in m.prerequisite.any_of if profile.has_matter(c)] if m.prerequisite else []
        for m in profile.matters
    }
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(code: str, path: list[str]) -> list[str]:
        state[code] = 1
        for nxt in edges.get(code, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt, [*path, nxt])
                if cycle:
                    return cycle
        state[code] = 2
        return []

    for code in edges:
        if code not in state:
            cycle = visit(code, [code])
            if cycle:
                return cycle
    return []


def _where(loc: tuple[Any, ...], document: dict[str, Any]) -> str:
    """Pydantic's location with the matter code added, e.g. ``matters[2] (social_security_card).time_limits``."""
    text = ""
    node: Any = document
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("code"), str):
                text += f" ({node['code']})"
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text or "(root)"


class ProfileRegistry:
    def __init__(self, profiles: Mapping[str, Profile]) -> None:
        self._profiles = dict(profiles)

    @classmethod
    def load_dir(cls, folder: Path, *, known_operations: Mapping[str, set[str]] | None = None) -> ProfileRegistry:
        folder = Path(folder)
        files = sorted(folder.glob("*.yaml"))
        if not files:
            raise ProfileError([f"{folder}: no profile (*.yaml) found"])
        problems: list[str] = []
        profiles: dict[str, Profile] = {}
        for path in files:
            try:
                profile = load_profile(path, known_operations=known_operations)
            except ProfileError as exc:
                problems.extend(exc.problems)
                continue
            if profile.code in profiles:
                problems.append(f"{path}: profile code '{profile.code}' is used by another file")
            profiles[profile.code] = profile
        if problems:
            raise ProfileError(problems)
        return cls(profiles)

    def get(self, code: str) -> Profile:
        return self._profiles[code]

    def codes(self) -> list[str]:
        return sorted(self._profiles)
