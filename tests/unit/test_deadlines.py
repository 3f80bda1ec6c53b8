"""Deadlines in Chinese working days from the profiles' promises (Guangxi 六, Jiujiang's documented defaults)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from gateway.domain.deadlines import case_deadline, task_deadline
from gateway.domain.working_days import WorkingDayCalendar
from gateway.profiles.loader import ProfileRegistry, load_profile

ROOT = Path(__file__).resolve().parents[2]
D = datetime.date


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load_dir(ROOT / "profiles")


@pytest.fixture
def calendar() -> WorkingDayCalendar:
    return WorkingDayCalendar()


@pytest.mark.parametrize(
    ("matter", "channel", "expected"),
    [
        ("archive_transfer", "online", D(2026, 11, 25)),  # 2 working days
        ("archive_transfer", "window", D(2026, 11, 23)),  # same day
        ("resident_pension_enrolment", "online", D(2026, 11, 26)),
        ("resident_pension_enrolment", "window", D(2026, 12, 3)),  # 8 working days
        ("social_security_card", "online", D(2026, 11, 30)),  # 5, over a weekend
        ("employee_medical_enrolment", "online", D(2026, 11, 23)),
    ],
)
def test_guangxi_task_deadlines(registry, calendar, matter, channel, expected):
    assert task_deadline(registry.get("guangxi"), matter, channel, D(2026, 11, 23), calendar) == expected


def test_same_day_on_a_holiday_means_the_next_working_day(registry, calendar):
    # 2026-10-01..07 National Day; 2026-10-10 (Saturday) is a make-up working day.
    assert task_deadline(registry.get("guangxi"), "contribution_declaration", "online", D(2026, 10, 3), calendar) == (
        D(2026, 10, 8)
    )


def test_guangxi_case_deadline_is_the_whole_case_promise(registry, calendar):
    guangxi = registry.get("guangxi")
    assert case_deadline(guangxi, ["employee_medical_enrolment"], "online", D(2026, 11, 23), calendar) == D(2026, 12, 3)
    assert case_deadline(guangxi, ["resident_pension_enrolment"], "window", D(2026, 11, 23), calendar) == D(2026, 12, 3)


def test_jiujiang_case_deadline_is_the_latest_task(registry, calendar):
    jiujiang = registry.get("jiujiang")
    assert case_deadline(jiujiang, ["employee_pension_enrolment"], "online", D(2026, 11, 28), calendar) == D(
        2026, 11, 30
    )


def test_demo_case_deadline_and_task(calendar):
    demo = load_profile(ROOT / "tests" / "fixtures" / "profiles" / "demo_city.yaml")
    assert task_deadline(demo, "employee_pension_enrolment", "online", D(2026, 11, 23), calendar) == D(2026, 11, 24)
    assert case_deadline(demo, ["employee_pension_enrolment"], "online", D(2026, 11, 23), calendar) == D(2026, 11, 26)


def test_deadlines_reaching_2027_do_not_crash(registry, tmp_path):
    """chinese-calendar stops at 2026: a December submission is computed with the fallback and reported."""
    seen: list[int] = []
    empty = tmp_path / "overrides.yaml"
    empty.write_text("years: {}\n", encoding="utf-8")
    calendar = WorkingDayCalendar(overrides_path=empty, on_fallback=seen.append)
    guangxi = registry.get("guangxi")
    # 2026-12-28 (Mon) + 8 working days, Mon-Fri in 2027: 29, 30, 31, Jan 1 (Fri), 4, 5, 6, 7.
    assert case_deadline(guangxi, ["social_security_card"], "online", D(2026, 12, 28), calendar) == D(2027, 1, 7)
    assert seen == [2027]
