from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric

from gateway.domain.identity_numbers import (
    IdNumberError,
    ResidentIdNumber,
    age_on,
    check_character,
    parse_id_number,
)

TODAY = datetime.date(2025, 6, 1)


def _with_check(first17: str) -> str:
    # Independent oracle: stdnum's calc_check_digit ignores the last character it is given.
    return first17 + ric.calc_check_digit(first17 + "0")


# 110115 大兴区 was created in 2001; stdnum.cn.ric rejects it for someone born in 1980 (DOMAIN.md trap).
DAXING_1980 = _with_check("11011519800101123")


def test_daxing_sample_is_rejected_by_stdnum_but_has_valid_check_char() -> None:
    assert DAXING_1980 == "110115198001011230"
    assert check_character(DAXING_1980[:17]) == "0"
    assert not ric.is_valid(DAXING_1980)
    assert ric.calc_check_digit(DAXING_1980) == DAXING_1980[-1]


@pytest.mark.parametrize(
    ("raw", "number", "birth", "sex", "sequence"),
    [
        ("11010519491231002X", "11010519491231002X", datetime.date(1949, 12, 31), "female", "002"),
        ("11010519491231002x", "11010519491231002X", datetime.date(1949, 12, 31), "female", "002"),
        ("44030419900307123X", "44030419900307123X", datetime.date(1990, 3, 7), "male", "123"),
        ("310115200012294560", "310115200012294560", datetime.date(2000, 12, 29), "female", "456"),
        (" 310115 20001229 4560 ", "310115200012294560", datetime.date(2000, 12, 29), "female", "456"),
        ("１１０１０５１９４９１２３１００２ｘ", "11010519491231002X", datetime.date(1949, 12, 31), "female", "002"),
    ],
)
def test_valid_samples(raw: str, number: str, birth: datetime.date, sex: str, sequence: str) -> None:
    parsed = parse_id_number(raw, today=TODAY)
    assert parsed.number == number
    assert parsed.division_code == number[:6]
    assert parsed.birth_date == birth
    assert parsed.sex == sex
    assert parsed.sequence == sequence
    assert parsed.permit_region is None
    assert parsed.division_known is True


def test_unknown_division_in_birth_year_parses() -> None:
    parsed = parse_id_number(DAXING_1980, today=TODAY)
    assert parsed.birth_date == datetime.date(1980, 1, 1)
    assert parsed.sex == "male"
    # stdnum knows 110115 (from 2001); the birth-year mismatch is normal and not even a warning.
    assert parsed.division_known is True


def test_division_never_listed_is_a_warning_not_a_rejection() -> None:
    number = _with_check("99999919800101123")
    parsed = parse_id_number(number, today=TODAY)
    assert parsed.division_known is False
    assert parsed.birth_date == datetime.date(1980, 1, 1)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("110105194912310020", "applicant.id_number.checksum"),
        ("110105194902301234", "applicant.id_number.birth_date"),  # 30 February (check char is right)
        (_with_check("11010519491301123"), "applicant.id_number.birth_date"),  # month 13
        (_with_check("11010518991231123"), "applicant.id_number.birth_date"),  # before 1900
        (_with_check("11010520250602123"), "applicant.id_number.birth_date"),  # tomorrow relative to TODAY
        ("11010519491231002", "applicant.id_number.length"),
        ("11010519491231002X1", "applicant.id_number.length"),
        ("", "applicant.id_number.length"),
        ("110105491231002", "applicant.id_number.obsolete_15_digit"),
        ("1101054912310X2", "applicant.id_number.length"),
        ("1101051949123100XX", "applicant.id_number.format"),
        ("11010519491231002Y", "applicant.id_number.format"),
        ("X10105194912310020", "applicant.id_number.format"),
    ],
)
def test_invalid_samples(raw: str, code: str) -> None:
    with pytest.raises(IdNumberError) as info:
        parse_id_number(raw, today=TODAY)
    assert info.value.code == code
    assert info.value.message_zh
    assert info.value.message_en
    assert isinstance(info.value, ValueError)


def test_30_february_sample_has_a_correct_check_char() -> None:
    # So the date, not the checksum, is what must reject it.
    assert check_character("11010519490230123") == "4"


def test_obsolete_15_digit_message_asks_for_18() -> None:
    with pytest.raises(IdNumberError) as info:
        parse_id_number("110105491231002", today=TODAY)
    assert "18" in info.value.message_zh and "18" in info.value.message_en


def test_birth_date_today_is_allowed() -> None:
    number = _with_check("11010520250601123")
    assert parse_id_number(number, today=TODAY).birth_date == TODAY


@pytest.mark.parametrize(("prefix", "region"), [("810000", "hk"), ("820000", "macau"), ("830000", "taiwan")])
def test_hmt_residence_permit(prefix: str, region: str) -> None:
    number = _with_check(prefix + "19900101002")
    for kind in ("hmt_residence_permit", "resident_id"):
        parsed = parse_id_number(number, kind=kind, today=TODAY)
        assert parsed.permit_region == region
        assert parsed.division_known is True
        assert parsed.sex == "female"


def test_permit_kind_rejects_resident_prefix() -> None:
    with pytest.raises(IdNumberError) as info:
        parse_id_number("11010519491231002X", kind="hmt_residence_permit", today=TODAY)
    assert info.value.code == "applicant.id_number.permit_prefix"


@pytest.mark.parametrize(
    "number", ["11010519491231002X", "44030419900307123X", "310115200012294560", "360426199101010071"]
)
def test_check_character_matches_samples_and_stdnum(number: str) -> None:
    assert check_character(number[:17]) == number[17]
    assert ric.calc_check_digit(number) == number[17]


@pytest.mark.parametrize("bad", ["1234", "1101051949123100X", "１１０１０５１９４９１２３１００２"])
def test_check_character_rejects_bad_input(bad: str) -> None:
    with pytest.raises(ValueError):
        check_character(bad)


def test_parse_uses_real_today_by_default() -> None:
    assert parse_id_number("11010519491231002X").birth_date == datetime.date(1949, 12, 31)


# --- age_on -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "expected"),
    [
        ("1990-03-07", "1990-03-07", (0, 0)),
        ("1990-03-07", "2025-03-06", (34, 11)),
        ("1990-03-07", "2025-03-07", (35, 0)),
        ("1990-03-07", "2025-04-07", (35, 1)),
        ("1990-03-07", "2025-05-06", (35, 1)),
        # 29 February: in common years the anniversary is 28 February (month end), in leap years the 29th.
        ("2000-02-29", "2001-02-27", (0, 11)),
        ("2000-02-29", "2001-02-28", (1, 0)),
        ("2000-02-29", "2004-02-28", (3, 11)),
        ("2000-02-29", "2004-02-29", (4, 0)),
        ("2000-02-29", "2001-03-28", (1, 0)),
        ("2000-02-29", "2001-03-29", (1, 1)),
        # month end: born on the 31st completes a month on the last day of shorter months
        ("2000-01-31", "2000-02-28", (0, 0)),
        ("2000-01-31", "2000-02-29", (0, 1)),
        ("2001-01-31", "2001-02-28", (0, 1)),
        ("2001-01-31", "2001-04-30", (0, 3)),
        ("2001-01-31", "2001-05-30", (0, 3)),
        ("2001-01-31", "2001-05-31", (0, 4)),
        ("1965-01-15", "2025-02-01", (60, 0)),
        ("1965-01-15", "2025-02-15", (60, 1)),
    ],
)
def test_age_on(birth: str, on: str, expected: tuple[int, int]) -> None:
    assert age_on(datetime.date.fromisoformat(birth), datetime.date.fromisoformat(on)) == expected


def test_age_on_before_birth_raises() -> None:
    with pytest.raises(ValueError):
        age_on(datetime.date(2000, 1, 2), datetime.date(2000, 1, 1))


@given(birth=st.dates(datetime.date(1900, 1, 1), datetime.date(2030, 12, 31)), days=st.integers(0, 40_000))
def test_age_on_is_monotonic_and_matches_year_rule(birth: datetime.date, days: int) -> None:
    on = birth + datetime.timedelta(days=days)
    years, months = age_on(birth, on)
    assert 0 <= months < 12
    nxt = age_on(birth, on + datetime.timedelta(days=1))
    assert nxt >= (years, months)
    # Full years agree with the plain "has the birthday (or 28 Feb for 29 Feb) passed" rule.
    anniversary = (birth.month, min(birth.day, 28) if birth.month == 2 and not _leap(on.year) else birth.day)
    assert years == on.year - birth.year - ((on.month, on.day) < anniversary)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# --- property tests ---------------------------------------------------------------------------------------------

DIVISIONS = ["110105", "110115", "440304", "310115", "360426", "510107", "810000", "820000", "830000", "999999"]


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, datetime.date, int]:
    division = draw(st.sampled_from(DIVISIONS))
    birth = draw(st.dates(datetime.date(1900, 1, 1), TODAY))
    sequence = draw(st.integers(0, 999))
    number = _with_check(f"{division}{birth:%Y%m%d}{sequence:03d}")
    return number, birth, sequence


@given(valid_numbers(), st.booleans())
def test_generated_valid_numbers_parse(sample: tuple[str, datetime.date, int], lower: bool) -> None:
    number, birth, sequence = sample
    parsed = parse_id_number(number.lower() if lower else number, today=TODAY)
    assert isinstance(parsed, ResidentIdNumber)
    assert parsed.number == number
    assert parsed.birth_date == birth
    assert parsed.sequence == f"{sequence:03d}"
    assert parsed.sex == ("male" if sequence % 2 else "female")
    assert check_character(number[:17]) == number[17]


@given(valid_numbers(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_single_character_change_fails_checksum(
    sample: tuple[str, datetime.date, int], position: int, replacement: str
) -> None:
    number = sample[0]
    if position < 17 and replacement == "X":
        replacement = "0"
    if number[position] == replacement:
        return
    mutated = number[:position] + replacement + number[position + 1 :]
    try:
        parse_id_number(mutated, today=TODAY)
    except IdNumberError as exc:
        assert exc.code == "applicant.id_number.checksum"
    else:
        # MOD 11-2 detects every single-character substitution, so this branch is never expected to run.
        assert check_character(mutated[:17]) == mutated[17]
        pytest.fail(f"{mutated} (from {number}) unexpectedly valid")
