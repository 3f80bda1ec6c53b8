"""Statutory retirement age after the NPC Standing Committee decision of 2024-09-13 (in force 2025-01-01).

Formula (DOMAIN.md): ``orig`` = month the person reaches the old age (60 men, 55 or 50 women), ``k`` = months from
2025-01 to ``orig``. k < 0: no delay. Otherwise ``delay = min(k // step + 1, cap)`` with step 4 / cap 36 for men and
55-year women, step 2 / cap 60 for 50-year women. Retirement month = ``orig + delay``.

Only the month of birth matters; the day is ignored. Which original age applies to a woman in flexible employment
is a provincial choice, so callers pass it from the profile. Voluntary early/late retirement (弹性退休) is out of
scope here.
"""

from __future__ import annotations

import datetime
from typing import Literal

__all__ = ["has_reached_retirement", "retirement_age_months", "retirement_month"]

Sex = Literal["male", "female"]
FemaleOriginalAge = Literal[50, 55]

_REFORM_START = 2025 * 12 + (1 - 1)  # 2025-01 as a month index


def _rule(sex: Sex, female_original_age: int) -> tuple[int, int, int]:
    """(original age in years, step in months, cap in months)."""
    if female_original_age not in (50, 55):
        raise ValueError(f"female_original_age must be 50 or 55, got {female_original_age!r}")
    if sex == "male":
        return 60, 4, 36  # female_original_age is irrelevant for men
    if sex == "female":
        return (55, 4, 36) if female_original_age == 55 else (50, 2, 60)
    raise ValueError(f"sex must be 'male' or 'female', got {sex!r}")


def retirement_age_months(birth: datetime.date, sex: Sex, *, female_original_age: FemaleOriginalAge = 55) -> int:
    """Statutory retirement age in months, e.g. 60 years 1 month -> 721."""
    original_age, step, cap = _rule(sex, female_original_age)
    original_months = original_age * 12
    k = birth.year * 12 + (birth.month - 1) + original_months - _REFORM_START
    delay = 0 if k < 0 else min(k // step + 1, cap)
    return original_months + delay


def retirement_month(birth: datetime.date, sex: Sex, *, female_original_age: FemaleOriginalAge = 55) -> tuple[int, int]:
    """(year, month) in which the person reaches statutory retirement age."""
    index = (
        birth.year * 12 + (birth.month - 1) + retirement_age_months(birth, sex, female_original_age=female_original_age)
    )
    year, month0 = divmod(index, 12)
    return year, month0 + 1


def has_reached_retirement(
    birth: datetime.date,
    sex: Sex,
    on: datetime.date,
    *,
    female_original_age: FemaleOriginalAge = 55,
) -> bool:
    """True from the first day of the retirement month on.

    The law and its published tables fix retirement to a month, not a day, so the whole month counts: an
    application for flexible-employment pension insurance made any day in that month is already past the age.
    """
    year, month = retirement_month(birth, sex, female_original_age=female_original_age)
    return (on.year, on.month) >= (year, month)
