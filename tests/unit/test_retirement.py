from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.retirement import has_reached_retirement, retirement_age_months, retirement_month

# (sex, female original age, birth year-month, retirement year-month, age years, age extra months)
CASES: list[tuple[str, int, str, str, int, int]] = [
    # DOMAIN.md examples
    ("male", 55, "1965-01", "2025-02", 60, 1),
    ("male", 55, "1965-12", "2026-03", 60, 3),
    ("female", 55, "1971-04", "2026-08", 55, 4),
    ("female", 50, "1995-12", "2050-12", 55, 0),
    # k < 0: old age reached before 2025-01, no delay
    ("male", 55, "1964-12", "2024-12", 60, 0),
    ("male", 55, "1950-06", "2010-06", 60, 0),
    ("female", 55, "1969-12", "2024-12", 55, 0),
    ("female", 50, "1974-12", "2024-12", 50, 0),
    # month boundaries around the reform: one month per 4 (or 2) birth months, so some calendar months are skipped
    ("male", 55, "1965-04", "2025-05", 60, 1),
    ("male", 55, "1965-05", "2025-07", 60, 2),
    ("male", 55, "1965-08", "2025-10", 60, 2),
    ("male", 55, "1965-09", "2025-12", 60, 3),
    ("female", 55, "1970-01", "2025-02", 55, 1),
    ("female", 55, "1970-05", "2025-07", 55, 2),
    ("female", 50, "1975-01", "2025-02", 50, 1),
    ("female", 50, "1975-02", "2025-03", 50, 1),
    ("female", 50, "1975-03", "2025-05", 50, 2),
    ("female", 50, "1975-04", "2025-06", 50, 2),
    # reaching the caps
    ("male", 55, "1976-08", "2039-07", 62, 11),
    ("male", 55, "1976-09", "2039-09", 63, 0),
    ("male", 55, "1980-01", "2043-01", 63, 0),
    ("male", 55, "1980-12", "2043-12", 63, 0),
    ("female", 55, "1981-08", "2039-07", 57, 11),
    ("female", 55, "1981-09", "2039-09", 58, 0),
    ("female", 55, "1990-05", "2048-05", 58, 0),
    ("female", 50, "1984-10", "2039-09", 54, 11),
    ("female", 50, "1984-11", "2039-11", 55, 0),
    ("female", 50, "1990-01", "2045-01", 55, 0),
    ("female", 50, "1990-12", "2045-12", 55, 0),
]


@pytest.mark.parametrize(("sex", "orig", "born", "retires", "years", "months"), CASES)
def test_retirement_table(sex: Any, orig: Any, born: str, retires: str, years: int, months: int) -> None:
    for day in (1, 15, 28):  # the day of birth never matters
        birth = datetime.date.fromisoformat(f"{born}-{day:02d}")
        year, month = (int(part) for part in retires.split("-"))
        assert retirement_month(birth, sex, female_original_age=orig) == (year, month)
        assert retirement_age_months(birth, sex, female_original_age=orig) == years * 12 + months


def test_age_months_example_from_interface() -> None:
    assert retirement_age_months(datetime.date(1965, 1, 10), "male") == 721


def test_female_default_original_age_is_55() -> None:
    assert retirement_month(datetime.date(1971, 4, 1), "female") == (2026, 8)


def test_female_original_age_is_ignored_for_men() -> None:
    birth = datetime.date(1965, 12, 3)
    assert retirement_month(birth, "male", female_original_age=50) == retirement_month(birth, "male") == (2026, 3)


@pytest.mark.parametrize("bad", [45, 60, 0])
def test_invalid_original_age_raises(bad: int) -> None:
    with pytest.raises(ValueError):
        retirement_month(datetime.date(1970, 1, 1), "female", female_original_age=bad)  # type: ignore[arg-type]


def test_invalid_sex_raises() -> None:
    with pytest.raises(ValueError):
        retirement_month(datetime.date(1970, 1, 1), "other")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("birth", "sex", "orig", "on", "expected"),
    [
        # man born 1965-01 retires in 2025-02: the whole of February counts, January does not
        ("1965-01-20", "male", 55, "2025-01-20", False),
        ("1965-01-20", "male", 55, "2025-01-31", False),
        ("1965-01-20", "male", 55, "2025-02-01", True),
        ("1965-01-20", "male", 55, "2025-02-28", True),
        # a fixed 60 cut-off would say True here; from 2025 on it is wrong
        ("1965-06-01", "male", 55, "2025-06-01", False),
        ("1965-06-01", "male", 55, "2025-08-01", True),
        # no delay before the reform
        ("1964-12-31", "male", 55, "2024-11-30", False),
        ("1964-12-31", "male", 55, "2024-12-01", True),
        ("1971-04-30", "female", 55, "2026-07-31", False),
        ("1971-04-30", "female", 55, "2026-08-01", True),
        ("1995-12-01", "female", 50, "2050-11-30", False),
        ("1995-12-01", "female", 50, "2050-12-01", True),
        ("1995-12-01", "female", 55, "2050-12-01", False),
    ],
)
def test_has_reached_retirement(birth: str, sex: Any, orig: Any, on: str, expected: bool) -> None:
    assert (
        has_reached_retirement(
            datetime.date.fromisoformat(birth), sex, datetime.date.fromisoformat(on), female_original_age=orig
        )
        is expected
    )


RULES = [("male", 55, 60, 36), ("female", 55, 55, 36), ("female", 50, 50, 60)]


@given(
    rule=st.sampled_from(RULES),
    birth=st.dates(datetime.date(1930, 1, 1), datetime.date(2010, 12, 31)),
)
def test_properties(rule: tuple[Any, Any, int, int], birth: datetime.date) -> None:
    sex, orig, base, cap = rule
    age = retirement_age_months(birth, sex, female_original_age=orig)
    assert base * 12 <= age <= base * 12 + cap
    year, month = retirement_month(birth, sex, female_original_age=orig)
    assert (year * 12 + month - 1) - (birth.year * 12 + birth.month - 1) == age
    # Someone born a month later never retires earlier, and never at a younger age.
    later = (birth.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    assert retirement_month(later, sex, female_original_age=orig) > (year, month)
    assert retirement_age_months(later, sex, female_original_age=orig) >= age
    # Nobody whose old age falls before 2025 is delayed.
    if (birth.year + base, birth.month) < (2025, 1):
        assert age == base * 12
