"""Celery beat schedules as jobpulse schedules, and the slot a due entry fires for.

``crontab`` → ``schedule`` in cron's field order (minute hour day-of-month month day-of-week;
Celery's day of week counts from Sunday = 0, as cron does) and the schedule's ``timezone``;
``schedule(timedelta)`` → ``every``; ``solar`` and anything else → :class:`UnsupportedSchedule`.
The fields come from the crontab's parsed sets, never its text. Celery fires a crontab when the
day of the month AND the day of the week match; cron ORs them when both are restricted, so such
an entry is written with a ``*/step`` day-of-week (cronsim then ANDs) when that says the same
days, and refused otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import crontab, schedule, solar
from cronsim import CronSim, CronSimError

from jobpulse.instrumentation._cron import join_days, render
from jobpulse.instrumentation.errors import InvalidTimezone, UnsupportedSchedule
from jobpulse.instrumentation.spec import check_timezone

__all__ = ["UnsupportedSchedule", "entry_slot", "schedule_fields"]


def _zone(sched: Any, what: str) -> str:
    tz = sched.tz
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name is None and tz.utcoffset(None) == timedelta(0):
        name = "UTC"
    try:
        return check_timezone(name)
    except InvalidTimezone:
        raise UnsupportedSchedule(f"{what}: timezone {tz!r} has no IANA name") from None


def _crontab_fields(sched: crontab, what: str) -> dict[str, Any]:
    dom, dow = join_days(set(sched.day_of_month), set(sched.day_of_week), what)
    cron = " ".join(
        (
            render(set(sched.minute), 0, 59),
            render(set(sched.hour), 0, 23),
            dom,
            render(set(sched.month_of_year), 1, 12),
            dow,
        )
    )
    return {"schedule": cron, "timezone": _zone(sched, what)}


def schedule_fields(sched: object, what: str = "the beat entry") -> dict[str, Any]:
    """The jobpulse job fields for a beat entry's schedule.

    Raises :class:`UnsupportedSchedule` for a schedule no jobpulse schedule expresses.
    """
    if isinstance(sched, solar):
        raise UnsupportedSchedule(
            f"{what}: solar schedules ({sched.event} at {sched.lat}, {sched.lon}) move every day; "
            "no cron expression or interval says when they fire"
        )
    if isinstance(sched, crontab):
        return _crontab_fields(sched, what)
    if type(sched) is schedule:
        seconds = float(getattr(sched, "run_every", timedelta(0)).total_seconds())
        if seconds <= 0:
            raise UnsupportedSchedule(f"{what}: an interval of {seconds} s never repeats")
        return {"every": seconds}
    raise UnsupportedSchedule(
        f"{what}: {type(sched).__name__} schedules are not converted (crontab and "
        "schedule/timedelta are)"
    )


def entry_slot(fields: dict[str, Any], last_run_at: datetime | None, now: float) -> float | None:
    """The slot a due beat entry fires for: the latest cron time at or before ``now``, or the
    previous send plus the interval. None when it cannot be told."""
    cron = fields.get("schedule")
    if cron is not None:
        zone = check_timezone(fields.get("timezone", "UTC"))
        # From the middle of the current second, cronsim's first step back is that second.
        start = datetime.fromtimestamp(int(now) + 0.5, ZoneInfo(zone))
        try:
            return float(next(CronSim(cron, start, reverse=True)).timestamp())
        except (CronSimError, StopIteration):
            return None
    every = fields.get("every")
    if every is not None and last_run_at is not None:
        last = last_run_at if last_run_at.tzinfo else last_run_at.replace(tzinfo=UTC)
        return min(now, last.timestamp() + float(every))
    return None
