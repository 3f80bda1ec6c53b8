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


# The applicant's own fields the form asks for (the rest of `POST /v1/cases`'s Applicant is optional).
APPLICANT_FIELDS = (("name", "姓名", "text", True), ("id_number", "证件号码", "text", True),
                    ("phone", "手机号码", "tel", True), ("household_division_code", "户籍地区划代码", "text", False))


def _typed(prop: dict[str, Any], raw: str) -> Any:
    """One submitted value as the schema types it; a value that does not parse is sent as typed, for the API to
    refuse with its own message."""
    choices = {str(o["const"]): o["const"] for o in prop.get("oneOf", []) if "const" in o}
    choices |= {str(v): v for v in prop.get("enum", [])}
    if raw in choices:
        return choices[raw]
    try:
        if prop.get("type") == "integer":
            return int(raw)
        if prop.get("type") == "number":
            return float(raw) if "." in raw else int(raw)
    except ValueError:
        pass
    return raw


def case_body(document: dict[str, Any], posted: dict[str, list[str]]) -> dict[str, Any]:
    """The `POST /v1/cases` body from the submitted one form, typed by the catalogue's section schemas: the chosen
    matters, each with its section; the applicant; online, delivered online."""
    chosen = set(posted.get("matters", []))
    matters = [m["code"] for m in document["matters"] if m["code"] in chosen]
    sections: dict[str, dict[str, Any]] = {}
    for matter in document["matters"]:
        if matter["code"] not in chosen:
            continue
        section: dict[str, Any] = {}
        for name, prop in (matter["section_schema"].get("properties") or {}).items():
            values = [v for v in posted.get(f"{matter['code']}.{name}", []) if v != ""]
            if prop.get("type") == "boolean":
                section[name] = bool(values)  # an unticked box is a no
            elif prop.get("type") == "array":
                if values:
                    section[name] = [_typed(prop.get("items") or {}, v) for v in values]
            elif values:
                section[name] = _typed(prop, values[0].strip())
        if section:
            sections[matter["code"]] = section
    applicant = {name: value.strip() for name, *_ in APPLICANT_FIELDS
                 if (value := (posted.get(f"applicant.{name}") or [""])[0]).strip()}
    applicant["id_type"] = (posted.get("applicant.id_type") or ["resident_id"])[0]
    return {"profile": document["profile"], "channel": "online", "applicant": applicant, "matters": matters,
            "sections": sections, "delivery": "online"}
