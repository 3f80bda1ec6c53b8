"""The tests' generic form filler on the JSON Schema constructs the catalogue uses (and $ref, which it may)."""

from __future__ import annotations

import datetime

import pytest

from tests.support.forms import UnfillableSchema, valid_section

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"place": {"oneOf": [{"const": "450100"}, {"const": "450200"}]}},
    "required": ["place", "long_term", "tier", "types", "phone", "since", "amount", "rows"],
    "properties": {
        "place": {"$ref": "#/$defs/place"},
        "long_term": {"type": "boolean", "default": False},
        "valid_to": {"type": "string", "format": "date"},
        "tier": {"enum": ["no_contribution", 100]},
        "groups": {"type": "array", "uniqueItems": True, "items": {"enum": ["a", "b", "other"]}},
        "types": {"type": "array", "minItems": 2, "uniqueItems": True, "contains": {"const": "basic"},
                  "items": {"oneOf": [{"const": "large"}, {"const": "basic"}, {"const": "care"}]}},
        "phone": {"type": "string", "pattern": "^1[3-9][0-9]{9}$"},
        "since": {"type": "string", "format": "date"},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
        "rows": {"type": "array", "minItems": 1,
                 "items": {"type": "object", "required": ["base"],
                           "properties": {"base": {"type": "integer", "minimum": 4000}}}},
    },
    "if": {"properties": {"long_term": {"const": False}}, "required": ["long_term"]},
    "then": {"required": ["valid_to"]},
    "dependentSchemas": {"tier": {"allOf": [
        {"if": {"properties": {"tier": {"const": "no_contribution"}}},
         "then": {"required": ["groups"], "properties": {"groups": {"minItems": 2}}}}]}},
    "additionalProperties": False,
}


def test_first_options_defaults_minimums_and_what_conditions_require():
    section = valid_section(SCHEMA, "demo")
    today = datetime.date.today().isoformat()
    assert section == {"place": "450100", "long_term": False, "valid_to": today, "tier": "no_contribution",
                       "groups": ["a", "b"], "types": ["basic", "large"], "phone": section["phone"],
                       "since": today, "amount": 0.5, "rows": [{"base": 4000}]}
    assert valid_section(SCHEMA, "demo") == section  # deterministic, patterns included


def test_a_section_its_schema_refuses_is_never_handed_to_a_test():
    with pytest.raises(UnfillableSchema, match="demo"):
        valid_section({"type": "string", "minLength": 5, "maxLength": 2}, "demo")
