"""Validation stays linear in its input and reports at most 100 problems, however many the body holds."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import pytest

from gateway.api.errors import ApiError
from gateway.api.limits import check_json_shape
from gateway.domain.validation import validate_application
from gateway.profiles.loader import ProfileRegistry
from tests.support.harness import applicant

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
TODAY = datetime.date(2026, 11, 23)


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load_dir(PROFILES)


def body(**overrides):
    return {"profile": "guangxi", "channel": "window", "applicant": applicant(), "delivery": "window",
            "matters": ["employee_medical_enrolment"], "sections": {}} | overrides


def test_twenty_thousand_unknown_matter_codes_give_at_most_100_errors_in_linear_time(registry):
    timings = {}
    for n in (2_000, 20_000):
        started = time.perf_counter()
        outcome = validate_application(body(matters=[f"m{i}" for i in range(n)]), registry, today=TODAY)
        timings[n] = time.perf_counter() - started
        assert outcome.application is None and len(outcome.errors) == 100
        assert {e.code for e in outcome.errors} == {"matters.unknown"}
        assert len(json.dumps([e.__dict__ for e in outcome.errors], ensure_ascii=False)) < 64 * 1024
    print(f"\nvalidation of unknown matter codes: {timings[2_000] * 1000:.0f} ms for 2,000, "
          f"{timings[20_000] * 1000:.0f} ms for 20,000")
    assert timings[20_000] < 5  # a sanity bound only


def test_the_same_problem_is_reported_once_and_warnings_are_bounded_too(registry):
    unknown_keys = {f"extra_{i}": "x" for i in range(500)}
    outcome = validate_application(body(matters=["nope", "employee_medical_enrolment", "nope"], **unknown_keys),
                                   registry, today=TODAY)
    fields = [(e.code, e.field) for e in outcome.errors]
    assert len(fields) == len(set(fields)) and ("matters.unknown", "matters.0") in fields
    valid = body(sections={"employee_medical_enrolment": {"insured_place": "450100", "scheme": "combined_accounts",
                                                          "insurance_types": ["employee_basic_medical"]}},
                 **unknown_keys)
    accepted = validate_application(valid, registry, today=TODAY)
    assert accepted.application is not None and len(accepted.warnings) == 100


def test_json_deeper_or_with_longer_lists_than_the_caps_is_refused_without_recursion():
    check_json_shape({"a": [[{"b": list(range(1000))}]]}, max_depth=32, max_items=1000)
    deep: object = []
    for _ in range(100_000):  # far beyond Python's recursion limit
        deep = [deep]
    with pytest.raises(ApiError) as refused:
        check_json_shape({"x": deep}, max_depth=32, max_items=1000)
    assert refused.value.status == 422 and refused.value.items[0].code == "body.too_deep"
    with pytest.raises(ApiError) as refused:
        check_json_shape({"sections": {"m": {"changes": list(range(1001))}}}, max_depth=32, max_items=1000)
    assert refused.value.items[0].code == "body.list_too_long"
    assert refused.value.items[0].field == "sections.m.changes"
