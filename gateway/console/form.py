"""The one form (一表申请) as the catalogue describes it: fields from each matter's section JSON Schema.

Only what the public contract gives (the `GET /v1/profiles/{p}` document, built by the same catalogue function), so a
platform team can copy the rendering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FormField:
    name: str
    title: str
    kind: str  # text | number | date | checkbox | select | multi
    required: bool
    options: list[tuple[str, str]] = field(default_factory=list)


def _options(schema: dict[str, Any]) -> list[tuple[str, str]]:
    if "oneOf" in schema:
        return [(str(o.get("const")), str(o.get("title", o.get("const")))) for o in schema["oneOf"] if "const" in o]
    return [(str(v), str(v)) for v in schema.get("enum", [])]


def section_fields(schema: dict[str, Any]) -> list[FormField]:
    required = set(schema.get("required", []))
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        title = str(prop.get("title", name))
        if prop.get("type") == "array":
            kind, options = "multi", _options(prop.get("items") or {})
        elif "oneOf" in prop or "enum" in prop:
            kind, options = "select", _options(prop)
        elif prop.get("type") == "boolean":
            kind, options = "checkbox", []
        elif prop.get("type") in ("integer", "number"):
            kind, options = "number", []
        else:
            kind, options = ("date" if prop.get("format") == "date" else "text"), []
        fields.append(FormField(name, title, kind, name in required, options))
    return fields


def form_context(document: dict[str, Any]) -> dict[str, Any]:
    """The catalogue document arranged for the template: matters with their fields, notices and rules."""
    names = {m["code"]: m["name_zh"] for m in document["matters"]}
    rules = document["rules"]
    excludes: dict[str, list[str]] = {code: [] for code in names}
    for first, second in rules.get("mutually_exclusive", []):
        excludes.setdefault(first, []).append(second)
        excludes.setdefault(second, []).append(first)
    matters = [{"code": m["code"], "name_zh": m["name_zh"], "name_en": m["name_en"], "department": m["department"],
                "notices": [n.get("text_zh", "") for n in m.get("notices", [])],
                "fields": section_fields(m["section_schema"]),
                "excludes": excludes.get(m["code"], []),
                "prerequisite": rules.get("prerequisites", {}).get(m["code"])}
               for m in document["matters"]]
    return {"document": document, "matters": matters, "names": names}
