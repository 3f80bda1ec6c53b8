"""Chinese working days (official holidays and make-up working days, 调休) for deadline arithmetic.

Source of truth per year, first match wins:
1. ``chinese_calendar`` (PyPI chinese-calendar) for the years it knows (2004-2026 in 1.11);
2. ``calendar_overrides.yaml`` for schedules the State Council has published but the package does not carry yet;
3. Monday-Friday, reported once per year through ``on_fallback`` so operations see it (metric + warning) and can add
   the year to the override file. Deadlines computed in December already reach the next year, so this must never
   raise.
"""

from __future__ import annotations

import datetime
import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chinese_calendar
import yaml

__all__ = ["DEFAULT_OVERRIDES_PATH", "CalendarOverrideError", "WorkingDayCalendar"]

DEFAULT_OVERRIDES_PATH = Path(__file__).with_name("calendar_overrides.yaml")

_ONE_DAY = datetime.timedelta(days=1)


class CalendarOverrideError(ValueError):
    """The override file is malformed; raised at construction so a bad deploy fails at start-up, not per request."""


@dataclass(frozen=True)
class _YearOverride:
    holidays: frozenset[datetime.date]
    workdays: frozenset[datetime.date]


def _parse_day(value: object, where: str) -> datetime.date:
    if isinstance(value, datetime.datetime):  # a YAML timestamp; only the date part means anything here
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CalendarOverrideError(f"{where}: {value!r} is not a YYYY-MM-DD date")


def _expand(entries: object, year: int, where: str) -> frozenset[datetime.date]:
    # Entries are single dates or "YYYY-MM-DD..YYYY-MM-DD" ranges (inclusive), so a 9-day break is one line.
    if entries is None:
        return frozenset()
    if not isinstance(entries, list):
        raise CalendarOverrideError(f"{where}: expected a list of dates")
    days: set[datetime.date] = set()
    for entry in entries:
        if isinstance(entry, str) and ".." in entry:
            first_raw, last_raw = entry.split("..", 1)
            first, last = _parse_day(first_raw, where), _parse_day(last_raw, where)
            if last < first:
                raise CalendarOverrideError(f"{where}: range {entry!r} ends before it starts")
            span = [first + _ONE_DAY * i for i in range((last - first).days + 1)]
        else:
            span = [_parse_day(entry, where)]
        for day in span:
            if day.year != year:
                raise CalendarOverrideError(f"{where}: {day.isoformat()} is not in {year}")
            days.add(day)
    return frozenset(days)


@functools.lru_cache(maxsize=8)
def _load_overrides(path: Path) -> Mapping[int, _YearOverride]:
    """Parse the override file once per path (the file ships with the code; changing it needs a restart)."""
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CalendarOverrideError(f"{path}: invalid YAML: {exc}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CalendarOverrideError(f"{path}: top level must be a mapping with a 'years' key")
    years = document.get("years") or {}
    if not isinstance(years, dict):
        raise CalendarOverrideError(f"{path}: 'years' must map a year to {{holidays: [...], workdays: [...]}}")
    result: dict[int, _YearOverride] = {}
    for raw_year, spec in years.items():
        try:
            year = int(raw_year)
        except (TypeError, ValueError) as exc:
            raise CalendarOverrideError(f"{path}: {raw_year!r} is not a year") from exc
        where = f"{path}: years.{year}"
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise CalendarOverrideError(f"{where} must be a mapping with 'holidays' and 'workdays'")
        unknown = set(spec) - {"holidays", "workdays"}
        if unknown:
            raise CalendarOverrideError(f"{where}: unknown keys {sorted(unknown)}")
        holidays = _expand(spec.get("holidays"), year, f"{where}.holidays")
        workdays = _expand(spec.get("workdays"), year, f"{where}.workdays")
        clash = holidays & workdays
        if clash:
            raise CalendarOverrideError(f"{where}: both holiday and workday: {sorted(d.isoformat() for d in clash)}")
        result[year] = _YearOverride(holidays=holidays, workdays=workdays)
    return result


class WorkingDayCalendar:
    def __init__(
        self,
        overrides_path: Path | None = None,
        on_fallback: Callable[[int], None] | None = None,
    ) -> None:
        if overrides_path is None:
            # The shipped file may be absent in a stripped install; that just means no overrides.
            self._overrides = _load_overrides(DEFAULT_OVERRIDES_PATH) if DEFAULT_OVERRIDES_PATH.exists() else {}
        else:
            self._overrides = _load_overrides(Path(overrides_path).resolve())
        self._on_fallback = on_fallback
        self._fallback_years: set[int] = set()
        self._unknown_to_package: set[int] = set()
        self._lock = threading.Lock()
        # chinese_calendar costs ~30 µs a date and every submission walks up to 85 working days: answer each once.
        self._answers: dict[datetime.date, bool] = {}

    def is_working_day(self, day: datetime.date) -> bool:
        answer = self._answers.get(day)
        if answer is None:
            answer = self._answers[day] = self._is_working_day(day)
        return answer

    def _is_working_day(self, day: datetime.date) -> bool:
        if day.year not in self._unknown_to_package:
            try:
                return bool(chinese_calendar.is_workday(day))
            except NotImplementedError:
                # Probe per year rather than hard-coding 2004-2026, so a package upgrade adds years by itself.
                with self._lock:
                    self._unknown_to_package.add(day.year)
        override = self._overrides.get(day.year)
        if override is not None:
            if day in override.workdays:
                return True
            if day in override.holidays:
                return False
            return day.weekday() < 5
        self._note_fallback(day.year)
        return day.weekday() < 5

    def add_working_days(self, start: datetime.date, days: int) -> datetime.date:
        """Deadline arithmetic.

        0 -> ``start`` if it is a working day, else the next working day; n >= 1 -> the n-th working day after start.
        """
        if days < 0:
            raise ValueError("days must be >= 0")
        if days == 0:
            day = start
            while not self.is_working_day(day):
                day += _ONE_DAY
            return day
        day, remaining = start, days
        while remaining:
            day += _ONE_DAY
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: datetime.date, end: datetime.date) -> int:
        """Working days in (start, end]: the inverse of add_working_days for n >= 1; negative if end < start."""
        if end < start:
            return -self.working_days_between(end, start)
        return sum(1 for day in _days(start + _ONE_DAY, end) if self.is_working_day(day))

    def fallback_years(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._fallback_years)

    def _note_fallback(self, year: int) -> None:
        with self._lock:
            if year in self._fallback_years:
                return
            self._fallback_years.add(year)
        # Called outside the lock: the callback logs and bumps a metric and may take its own locks.
        if self._on_fallback is not None:
            self._on_fallback(year)


def _days(first: datetime.date, last: datetime.date) -> Iterable[datetime.date]:
    day = first
    while day <= last:
        yield day
        day += _ONE_DAY
