from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.working_days import DEFAULT_OVERRIDES_PATH, CalendarOverrideError, WorkingDayCalendar


def d(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


class Recorder:
    def __init__(self) -> None:
        self.years: list[int] = []

    def __call__(self, year: int) -> None:
        self.years.append(year)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def cal(recorder: Recorder) -> WorkingDayCalendar:
    return WorkingDayCalendar(on_fallback=recorder)


def write_overrides(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overrides.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# Test data only, NOT the official 2027 schedule: it just has to differ visibly from Monday-Friday.
FAKE_2027 = """
years:
  2027:
    holidays:
      - 2027-01-01
      - "2027-02-08..2027-02-12"
    workdays:
      - 2027-01-09
"""


# --- 2026, known to chinese-calendar -----------------------------------------------------------------------------


@pytest.mark.parametrize("day", ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"])
def test_2026_make_up_working_days(cal: WorkingDayCalendar, day: str) -> None:
    assert d(day).weekday() >= 5  # all of them are weekend days
    assert cal.is_working_day(d(day))


@pytest.mark.parametrize("offset", range(9))
def test_2026_spring_festival_break_is_not_working(cal: WorkingDayCalendar, offset: int) -> None:
    assert not cal.is_working_day(d("2026-02-15") + datetime.timedelta(days=offset))


def test_2026_ordinary_days(cal: WorkingDayCalendar, recorder: Recorder) -> None:
    assert cal.is_working_day(d("2026-02-24"))
    assert not cal.is_working_day(d("2026-01-01"))
    assert not cal.is_working_day(d("2026-03-07"))  # plain Saturday
    assert cal.fallback_years() == frozenset()
    assert recorder.years == []


def test_deadline_spanning_spring_festival_2026(cal: WorkingDayCalendar) -> None:
    # 02-13 Fri (1), 02-14 make-up Sat (2), break 02-15..23, 02-24 (3), 02-25 (4), 02-26 (5)
    assert cal.add_working_days(d("2026-02-12"), 5) == d("2026-02-26")
    assert cal.add_working_days(d("2026-02-13"), 1) == d("2026-02-14")
    assert cal.add_working_days(d("2026-02-14"), 1) == d("2026-02-24")
    assert cal.working_days_between(d("2026-02-12"), d("2026-02-26")) == 5
    assert cal.working_days_between(d("2026-02-14"), d("2026-02-23")) == 0


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2026-03-07", "2026-03-09"),  # Saturday -> Monday
        ("2026-03-08", "2026-03-09"),  # Sunday -> Monday
        ("2026-02-15", "2026-02-24"),  # first day of the Spring Festival break
        ("2026-02-20", "2026-02-24"),  # holiday on a Friday
        ("2026-10-01", "2026-10-08"),  # National Day
        ("2026-01-01", "2026-01-04"),  # New Year -> make-up Sunday
        ("2026-02-14", "2026-02-14"),  # make-up Saturday is itself a working day
        ("2026-03-09", "2026-03-09"),  # ordinary Monday
    ],
)
def test_zero_day_deadline(cal: WorkingDayCalendar, start: str, expected: str) -> None:
    assert cal.add_working_days(d(start), 0) == d(expected)


def test_n_day_deadline_counts_from_the_day_after(cal: WorkingDayCalendar) -> None:
    assert cal.add_working_days(d("2026-03-09"), 1) == d("2026-03-10")
    assert cal.add_working_days(d("2026-03-06"), 1) == d("2026-03-09")  # Friday -> Monday
    assert cal.add_working_days(d("2026-09-30"), 1) == d("2026-10-08")


def test_negative_days_rejected(cal: WorkingDayCalendar) -> None:
    with pytest.raises(ValueError):
        cal.add_working_days(d("2026-03-09"), -1)


def test_working_days_between_edges(cal: WorkingDayCalendar) -> None:
    assert cal.working_days_between(d("2026-03-09"), d("2026-03-09")) == 0
    assert cal.working_days_between(d("2026-03-09"), d("2026-03-13")) == 4
    assert cal.working_days_between(d("2026-03-13"), d("2026-03-09")) == -4


# --- 2027 and other years the package does not know ---------------------------------------------------------------


def test_shipped_override_file_is_valid_and_has_no_invented_years() -> None:
    document = yaml.safe_load(DEFAULT_OVERRIDES_PATH.read_text(encoding="utf-8"))
    assert set(document) == {"years"}
    WorkingDayCalendar()  # loads without error


def test_deadline_from_late_december_2026_into_2027_falls_back(cal: WorkingDayCalendar, recorder: Recorder) -> None:
    # 12-25 (1), 12-28..31 (2-5), then Monday-Friday for 2027: 01-01 (6), 01-04 (7), 01-05 (8)
    assert cal.add_working_days(d("2026-12-24"), 8) == d("2027-01-05")
    assert cal.fallback_years() == frozenset({2027})
    assert recorder.years == [2027]
    # reported once per year, however often the year is consulted
    cal.add_working_days(d("2026-12-30"), 20)
    cal.is_working_day(d("2027-06-01"))
    assert recorder.years.count(2027) == 1


def test_fallback_years_accumulate_and_are_reported_once_each(cal: WorkingDayCalendar, recorder: Recorder) -> None:
    assert cal.is_working_day(d("2027-01-01"))  # Friday; New Year's Day in reality, but unknown here
    assert not cal.is_working_day(d("2027-01-02"))
    assert cal.is_working_day(d("2003-01-06"))  # before the package's range too
    assert cal.is_working_day(d("2027-01-04"))
    assert cal.fallback_years() == frozenset({2003, 2027})
    assert sorted(recorder.years) == [2003, 2027]


def test_fallback_without_callback_does_not_crash() -> None:
    cal = WorkingDayCalendar()
    assert cal.add_working_days(d("2030-12-30"), 3) == d("2031-01-02")
    assert cal.fallback_years() == frozenset({2030, 2031})


def test_override_file_is_used_for_unknown_year(tmp_path: Path, recorder: Recorder) -> None:
    cal = WorkingDayCalendar(write_overrides(tmp_path, FAKE_2027), on_fallback=recorder)
    assert not cal.is_working_day(d("2027-01-01"))
    assert cal.is_working_day(d("2027-01-09"))  # Saturday listed as a workday
    assert not cal.is_working_day(d("2027-01-10"))  # plain Sunday
    assert all(not cal.is_working_day(d("2027-02-08") + datetime.timedelta(days=i)) for i in range(5))
    assert cal.is_working_day(d("2027-02-15"))  # plain Monday
    # 12-25 (1), 12-28..31 (2-5), 01-01 is a holiday now: 01-04 (6), 01-05 (7), 01-06 (8)
    assert cal.add_working_days(d("2026-12-24"), 8) == d("2027-01-06")
    assert cal.add_working_days(d("2027-01-01"), 0) == d("2027-01-04")
    assert cal.fallback_years() == frozenset()
    assert recorder.years == []


def test_package_data_wins_over_override_for_known_years(tmp_path: Path) -> None:
    path = write_overrides(tmp_path, "years:\n  2026:\n    holidays: [2026-03-09]\n    workdays: [2026-03-07]\n")
    cal = WorkingDayCalendar(path)
    assert cal.is_working_day(d("2026-03-09"))
    assert not cal.is_working_day(d("2026-03-07"))


def test_string_dates_and_empty_years_are_accepted(tmp_path: Path) -> None:
    path = write_overrides(tmp_path, 'years:\n  "2027":\n    holidays: ["2027-01-01"]\n  2028:\n')
    cal = WorkingDayCalendar(path)
    assert not cal.is_working_day(d("2027-01-01"))
    assert cal.is_working_day(d("2028-01-03"))
    assert cal.fallback_years() == frozenset()  # 2028 is listed (no special days), so not a fallback


@pytest.mark.parametrize(
    "text",
    [
        "years: [2027]\n",
        "- 2027\n",
        "years:\n  2027:\n    holidays: [2028-01-01]\n",  # date outside its year
        "years:\n  2027:\n    holidays: [2027-01-01]\n    workdays: [2027-01-01]\n",  # both
        "years:\n  2027:\n    holidays: [not-a-date]\n",
        "years:\n  2027:\n    holidays: 2027-01-01\n",  # not a list
        "years:\n  2027:\n    holiday: [2027-01-01]\n",  # typo in key
        "years:\n  2027:\n    holidays: ['2027-02-10..2027-02-08']\n",  # reversed range
        "years:\n  next:\n    holidays: []\n",
        "years: {2027: [unclosed\n",
    ],
)
def test_malformed_override_file_fails_at_construction(tmp_path: Path, text: str) -> None:
    with pytest.raises(CalendarOverrideError):
        WorkingDayCalendar(write_overrides(tmp_path, text))


def test_empty_override_file_means_no_overrides(tmp_path: Path) -> None:
    cal = WorkingDayCalendar(write_overrides(tmp_path, "# nothing yet\n"))
    assert cal.is_working_day(d("2027-01-01"))
    assert cal.fallback_years() == frozenset({2027})


def test_missing_explicit_override_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        WorkingDayCalendar(tmp_path / "absent.yaml")


# --- properties ---------------------------------------------------------------------------------------------------

_shared = WorkingDayCalendar()


@settings(max_examples=200)
@given(start=st.dates(datetime.date(2024, 1, 1), datetime.date(2027, 12, 31)), days=st.integers(0, 40))
def test_add_and_between_are_inverse(start: datetime.date, days: int) -> None:
    end = _shared.add_working_days(start, days)
    assert end >= start
    assert _shared.is_working_day(end)
    if days >= 1:
        assert _shared.working_days_between(start, end) == days
        # end is the first day reaching the count
        assert _shared.working_days_between(start, end - datetime.timedelta(days=1)) == days - 1
