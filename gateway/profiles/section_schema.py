"""A matter's section as a complete JSON Schema (draft 2020-12): published in the catalogue and used to validate.

The profile writes each section as schema keywords; here it becomes a standalone schema: dialect, title, every object
closed (``additionalProperties: false``, so a misspelt field is reported instead of silently dropped), and the
prerequisite's "already held" list added with the allowed matter codes. The same dict is handed to the platform and
to ``jsonschema``, so what the form shows and what the gateway enforces cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator

from gateway.profiles.model import MatterSpec, Profile

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def section_schema(profile: Profile, matter: MatterSpec) -> dict[str, Any]:
    cache = profile._compiled
    key = f"schema:{matter.code}"
    if key not in cache:
        cache[key] = build_section_schema(profile, matter)
    schema: dict[str, Any] = cache[key]
    return schema


def section_validator(profile: Profile, matter: MatterSpec) -> Draft202012Validator:
    cache = profile._compiled
    key = f"validator:{matter.code}"
    if key not in cache:
        cache[key] = Draft202012Validator(
            section_schema(profile, matter), format_checker=Draft202012Validator.FORMAT_CHECKER
        )
    validator: Draft202012Validator = cache[key]
    return validator


def build_section_schema(profile: Profile, matter: MatterSpec) -> dict[str, Any]:
    """Uncached; the loader uses it to check a profile before anything else touches it."""
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "title": matter.name_zh,
        "description": matter.name_en,
        "type": "object",
    }
    schema.update(copy.deepcopy(matter.section))
    properties = schema.setdefault("properties", {})
    prerequisite = matter.prerequisite
    if prerequisite is not None and prerequisite.or_already_held:
        options = []
        for code in prerequisite.any_of:
            title = profile.matter(code).name_zh if profile.has_matter(code) else code
            options.append({"const": code, "title": title})
        properties[prerequisite.held_field] = {
            "type": "array",
            "title": "已办理（已参保）的前置事项",
            "description": "Prerequisite matters the applicant already holds (not selected in this case)",
            "items": {"oneOf": options},
            "uniqueItems": True,
            "x-stays": "网关据此判断前置事项是否已满足（不报送部门）",
        }
    _close_objects(schema)
    return schema


def required_fields(schema: dict[str, Any]) -> list[str]:
    required = schema.get("required", [])
    return list(required) if isinstance(required, list) else []


def _close_objects(node: Any) -> None:
    """Set ``additionalProperties: false`` on every object schema that lists its properties and says nothing else.

    Only nodes typed ``object``: the ``properties`` inside an ``if`` (a condition, not a shape) must stay open.
    """
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for item in node:
            _close_objects(item)
