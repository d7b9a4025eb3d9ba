"""Celery beat schedules → jobpulse schedules, including the day-of-month AND day-of-week rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery import Celery
from celery.schedules import crontab, schedule, solar
from cronsim import CronSim

from jobpulse.instrumentation.celery import UnsupportedSchedule, entry_slot, schedule_fields

APP = Celery("jobpulse-schedules", set_as_current=False)
APP.conf.timezone = "Europe/Riga"

CASES = [
    # (crontab arguments, expected cron: minute hour day-of-month month day-of-week)
    ({"minute": "*/15"}, "*/15 * * * *"),
    ({"minute": 0, "hour": 9, "day_of_week": "mon-fri"}, "0 9 * * 1-5"),
    ({"minute": 0, "hour": 0, "day_of_week": "sun"}, "0 0 * * 0"),  # Celery's Sunday is 0
    ({"minute": 0, "hour": 0, "day_of_week": "0,6"}, "0 0 * * 0,6"),
    ({"minute": 30, "hour": "8-18/2"}, "30 8-18/2 * * *"),
    ({"minute": 0, "hour": 4, "day_of_month": "1,15"}, "0 4 1,15 * *"),
    ({"minute": 0, "hour": 0, "month_of_year": "*/3", "day_of_month": 1}, "0 0 1 */3 *"),
    ({"minute": 5, "hour": 0, "day_of_month": "*/2", "day_of_week": "mon"}, "5 0 */2 * 1"),
    # both restricted, weekdays = cronsim's */2: written so that cronsim ANDs them too
    ({"minute": 0, "hour": 0, "day_of_month": "1-7", "day_of_week": "0,2,4,6"}, "0 0 1-7 * */2"),
]


@pytest.mark.parametrize(("kwargs", "expected"), CASES)
def test_crontab_converted_in_cron_field_order(kwargs: dict[str, object], expected: str) -> None:
    fields = schedule_fields(crontab(app=APP, **kwargs))
    assert fields == {"schedule": expected, "timezone": "Europe/Riga"}


@pytest.mark.parametrize(("kwargs", "expected"), CASES)
def test_converted_cron_fires_on_the_days_celery_does(
    kwargs: dict[str, object], expected: str
) -> None:
    # Celery matches day-of-month AND day-of-week: every fire time must satisfy both.
    sched = crontab(app=APP, **kwargs)
    it = CronSim(expected, datetime(2026, 11, 23, tzinfo=UTC))
    for _ in range(40):
        t = next(it)
        assert t.day in sched.day_of_month
        assert t.isoweekday() % 7 in sched.day_of_week
        assert t.month in sched.month_of_year
        assert (t.hour, t.minute) in {(h, m) for h in sched.hour for m in sched.minute}


def test_day_of_month_and_day_of_week_both_restricted_is_refused() -> None:
    # Celery: the first Monday of the month. Cron would run on days 1-7 OR on Mondays.
    with pytest.raises(UnsupportedSchedule, match="either matches"):
        schedule_fields(crontab(minute=0, hour=9, day_of_month="1-7", day_of_week="mon"))


def test_intervals_and_solar() -> None:
    assert schedule_fields(schedule(timedelta(minutes=5))) == {"every": 300.0}
    # Building a solar schedule needs the optional ephem package; the refusal reads only the
    # schedule's type and its event and place, so a solar instance is made without it.
    sunset = solar.__new__(solar)
    sunset.event, sunset.lat, sunset.lon = "sunset", 56.95, 24.1
    with pytest.raises(UnsupportedSchedule, match=r"solar schedules \(sunset at 56\.95, 24\.1\)"):
        schedule_fields(sunset)


def test_slot_of_a_due_entry() -> None:
    now = datetime(2026, 11, 23, 10, 7, 0, 400_000, tzinfo=UTC).timestamp()
    every_15 = {"schedule": "*/15 * * * *", "timezone": "Europe/Riga"}
    assert entry_slot(every_15, None, now) == datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()
    exactly = datetime(2026, 11, 23, 10, 15, tzinfo=UTC).timestamp()
    assert entry_slot(every_15, None, exactly) == exactly
    last = datetime(2026, 11, 23, 10, 2, tzinfo=UTC)
    assert entry_slot({"every": 300.0}, last, now) == last.timestamp() + 300
    assert entry_slot({"every": 300.0}, last.replace(tzinfo=None), now) == last.timestamp() + 300
    assert entry_slot({}, last, now) is None
