"""A generic form filler: what a platform's form renderer submits when a person fills a matter's section from the
catalogue's JSON Schema alone, picking the first option, the default, the minimum and today's date.

It knows nothing of the gateway's code, only JSON Schema (2020-12 as the catalogue uses it: $ref, allOf, oneOf/anyOf,
const, enum, default, required, if/then/else, dependentSchemas, contains, uniqueItems, min/max, pattern, formats), and
every section it builds is checked against its schema before use, so a fault of this filler never passes for a fault
of the gateway.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import jsonschema
import rstr

Schema = dict[str, Any]


class UnfillableSchema(AssertionError):
    """The filler built something its schema refuses: the test cannot go on with it."""


def valid_section(schema: Schema, matter: str = "") -> Any:
    """A filled instance of `schema`, validated against it (Draft 2020-12, formats checked)."""
    value = fill(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(section)'}: {e.message}"
                for e in validator.iter_errors(value)]
    if problems:
        raise UnfillableSchema(f"cannot fill the section of {matter or 'this schema'}: {'; '.join(problems)}")
    return value


def filled_sections(catalogue_matters: list[dict[str, Any]], matters: list[str]) -> dict[str, Any]:
    """Each named matter's section from a catalogue's `matters` list; empty sections are left out, as a form does."""
    schemas = {m["code"]: m["section_schema"] for m in catalogue_matters}
    sections = {code: valid_section(schemas[code], code) for code in matters}
    return {code: section for code, section in sections.items() if section}


def fill(schema: Schema, root: Schema | None = None, name: str = "") -> Any:
    """A minimal instance of `schema` (root: the document its `$ref`s point into)."""
    root = schema if root is None else root
    schema = _resolved(schema, root)
    for choice in ("oneOf", "anyOf"):
        if choice in schema:
            return fill(schema[choice][0], root, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return _object(schema, root)
    if kind == "array":
        return _array(schema, root, name)
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "null":
        return None
    return _string(schema, name)


def _resolved(schema: Schema, root: Schema) -> Schema:
    """The schema with its `$ref` followed and its `allOf` parts merged into one (properties and required joined;
    parts holding a condition are kept whole under `conditions`)."""
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
    if "allOf" not in schema:
        return schema
    merged: Schema = {k: v for k, v in schema.items() if k != "allOf"}
    for part in (_resolved(p, root) for p in schema["allOf"]):
        if "if" in part:
            merged.setdefault("conditions", []).append(part)
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _object(schema: Schema, root: Schema) -> dict[str, Any]:
    properties: dict[str, Schema] = schema.get("properties", {})
    value = {key: fill(properties.get(key, {}), root, key) for key in schema.get("required", [])}
    # Conditions (if/then/else, dependentSchemas) can ask for more fields once others hold values: apply until stable.
    for _ in range(8):
        missing = {k: sub for k, sub in _conditionally_required(schema, value, root).items() if k not in value}
        if not missing:
            break
        for key, sub in missing.items():
            value[key] = fill({**properties.get(key, {}), **sub}, root, key)
    return value


def _conditionally_required(schema: Schema, value: dict[str, Any], root: Schema) -> dict[str, Schema]:
    """Fields that the schema's conditions require of `value` as it stands, each with what the condition adds."""
    required: dict[str, Schema] = {}

    def apply(node: Schema, applies: bool) -> None:
        if applies:
            added = node.get("properties", {})
            required.update({key: added.get(key, {}) for key in node.get("required", [])})
        if "if" in node:
            branch = node.get("then") if _holds(node["if"], value) else node.get("else")
            if branch is not None:
                apply(_resolved(branch, root), True)
        for condition in node.get("conditions", []):
            apply(condition, False)

    apply(schema, False)
    for key, dependent in schema.get("dependentSchemas", {}).items():
        if key in value:
            apply(_resolved(dependent, root), True)
    return required


def _holds(condition: Schema, value: Any) -> bool:
    return jsonschema.Draft202012Validator(condition).is_valid(value)


def _array(schema: Schema, root: Schema, name: str) -> list[Any]:
    count = max(1, schema.get("minItems", 0))
    items = _resolved(schema.get("items", {}), root)
    options = [o["const"] for o in items.get("oneOf", items.get("anyOf", [])) if "const" in o] or items.get("enum", [])
    if "contains" in schema and "const" in schema["contains"]:
        wanted = schema["contains"]["const"]
        options = [wanted, *(o for o in options if o != wanted)]
    if options and (schema.get("uniqueItems") or "contains" in schema):
        return options[:count]
    return [fill(items, root, name) for _ in range(count)]


def _number(schema: Schema, kind: str) -> int | float:
    if "minimum" in schema:
        low = schema["minimum"]
    elif "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + 1
    else:
        low = 0
    if "maximum" in schema:
        low = min(low, schema["maximum"])
    return int(low) if kind == "integer" else float(low)


def _string(schema: Schema, name: str) -> str:
    today = dt.date.today()
    formats = {"date": today.isoformat(), "date-time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "email": "applicant@example.com", "uri": "https://example.com/"}
    if schema.get("format") in formats:
        return formats[schema["format"]]
    if "pattern" in schema:
        # Seeded by the pattern itself: the same value for the same field on every run.
        return str(rstr.Rstr(random.Random(schema["pattern"])).xeger(schema["pattern"]))
    text = ("样例" + name.replace("_", ""))[: schema.get("maxLength", 20)]
    return text.ljust(schema.get("minLength", 0), "样")
