"""Deadlines in Chinese working days: per task from the matter's promise for the channel, per case from the profile.

``calendar`` is a ``WorkingDayCalendar`` (chinese-calendar, override file, Mon-Fri fallback reported as a metric).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from gateway.domain.working_days import WorkingDayCalendar
from gateway.profiles.model import Channel, Profile


def task_deadline(
    profile: Profile, matter_code: str, channel: Channel, submitted_on: datetime.date, calendar: WorkingDayCalendar
) -> datetime.date:
    days = profile.matter(matter_code).time_limits.for_channel(channel)
    return calendar.add_working_days(submitted_on, days)


def case_deadline(
    profile: Profile,
    matter_codes: Iterable[str],
    channel: Channel,
    submitted_on: datetime.date,
    calendar: WorkingDayCalendar,
) -> datetime.date:
    """The whole-case promise when the profile makes one (Guangxi: 8), else the latest task's deadline.

    The loader guarantees no matter promises more than the whole case, so the case date is never before a task's.
    """
    if profile.promised_working_days is not None:
        return calendar.add_working_days(submitted_on, profile.promised_working_days)
    codes = list(matter_codes)
    if not codes:
        raise ValueError("a case has at least one matter")
    return max(task_deadline(profile, code, channel, submitted_on, calendar) for code in codes)
