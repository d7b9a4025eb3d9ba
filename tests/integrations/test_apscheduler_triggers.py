"""APScheduler triggers → jobpulse schedules, field by field (table-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cronsim import CronSim

from jobpulse.instrumentation.apscheduler import UnsupportedTrigger, trigger_fields

CRON_CASES = [
    # (CronTrigger arguments, expected cron)
    ({"minute": "*/5"}, "*/5 * * * *"),
    ({"hour": 9, "minute": 30}, "30 9 * * *"),
    ({"day_of_week": "mon-fri", "hour": 9}, "0 9 * * 1-5"),  # names: Monday = cron 1
    ({"day_of_week": "0-4", "hour": 9}, "0 9 * * 1-5"),  # numbers: APScheduler Monday = 0
    ({"day_of_week": "sun"}, "0 0 * * 0"),
    ({"day_of_week": "6"}, "0 0 * * 0"),  # APScheduler 6 is Sunday
    ({"day_of_week": "sat,sun"}, "0 0 * * 0,6"),
    ({"day_of_week": "5-6"}, "0 0 * * 0,6"),
    ({"day_of_week": "*/2"}, "0 0 * * 0-1,3,5"),  # Mon, Wed, Fri, Sun from Monday = 0
    ({"day_of_week": "mon,wed-fri", "hour": "8-18/2"}, "0 8-18/2 * * 1,3-5"),
    ({"month": "jan-mar", "day": 1}, "0 0 1 1-3 *"),
    ({"month": "*/3", "day": 15}, "0 0 15 */3 *"),
    ({"day": "1,15", "hour": 3}, "0 3 1,15 * *"),
    ({"day": "5/10"}, "0 0 5-25/10 * *"),  # open range: to the field's maximum
    ({"day": "last"}, "0 0 L * *"),
    ({"day": "1,last"}, "0 0 1,L * *"),
    ({"day": "2nd fri"}, "0 0 * * 5#2"),
    ({"day": "last sun", "hour": 2}, "0 2 * * 0L"),
    ({"day": "1st mon,3rd mon"}, "0 0 * * 1#1,1#3"),
    ({"second": "*/10"}, "*/10 * * * * *"),
    ({"second": 30, "minute": "*"}, "30 * * * * *"),
    ({"day": "*/2", "day_of_week": "mon"}, "0 0 */2 * 1"),  # a * day field: cronsim ANDs
    # both restricted: the weekdays are cronsim's */2 (Sun, Tue, Thu, Sat), so cronsim ANDs
    ({"day": "1-7", "day_of_week": "tue,thu,sat,sun"}, "0 0 1-7 * */2"),
]


@pytest.mark.parametrize(("kwargs", "expected"), CRON_CASES)
def test_cron_trigger_converted_field_by_field(kwargs: dict[str, object], expected: str) -> None:
    fields = trigger_fields(CronTrigger(timezone="UTC", **kwargs))
    assert fields == {"schedule": expected, "timezone": "UTC"}


@pytest.mark.parametrize(("kwargs", "expected"), CRON_CASES)
def test_converted_cron_fires_when_apscheduler_does(
    kwargs: dict[str, object], expected: str
) -> None:
    trigger = CronTrigger(timezone="UTC", **kwargs)
    start = datetime(2026, 11, 23, tzinfo=UTC)
    ours = CronSim(trigger_fields(trigger)["schedule"], start)
    fire = start - timedelta(microseconds=1)
    for _ in range(12):
        fire = trigger.get_next_fire_time(None, fire + timedelta(seconds=1))
        assert next(ours) == fire


def test_day_and_weekday_both_restricted_is_refused() -> None:
    # APScheduler fires on days 1-7 that are Mondays; cron would fire on days 1-7 OR Mondays.
    with pytest.raises(UnsupportedTrigger, match="either matches"):
        trigger_fields(CronTrigger(day="1-7", day_of_week="mon", timezone="UTC"))
    with pytest.raises(UnsupportedTrigger, match="either matches"):
        # APScheduler's */2 weekdays (Mon, Wed, Fri, Sun) are no cronsim */k set
        trigger_fields(CronTrigger(day="1-7", day_of_week="*/2", timezone="UTC"))
    with pytest.raises(UnsupportedTrigger, match="restrict only one"):
        trigger_fields(CronTrigger(day="2nd fri", day_of_week="mon-fri", timezone="UTC"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"year": 2027}, "year restriction"),
        ({"week": 10}, "week restriction"),
        ({"end_date": "2027-01-01"}, "end date"),
    ],
)
def test_fields_cron_cannot_express_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UnsupportedTrigger, match=message):
        trigger_fields(CronTrigger(timezone="UTC", **kwargs))


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Europe/Riga", "Europe/Riga"),
        ("America/New_York", "America/New_York"),
        (UTC, "UTC"),
        (timezone(timedelta(hours=2)), "Etc/GMT-2"),
        (timezone(timedelta(hours=-5)), "Etc/GMT+5"),
    ],
)
def test_timezone_travels_with_the_schedule(tz: object, expected: str) -> None:
    assert trigger_fields(CronTrigger(hour=3, timezone=tz))["timezone"] == expected


def test_half_hour_offset_has_no_zone_name() -> None:
    with pytest.raises(UnsupportedTrigger, match="IANA"):
        trigger_fields(CronTrigger(hour=3, timezone=timezone(timedelta(hours=5, minutes=30))))


def test_interval_date_and_jitter() -> None:
    assert trigger_fields(IntervalTrigger(minutes=15)) == {"every": 900.0}
    assert trigger_fields(DateTrigger(datetime(2027, 1, 1, tzinfo=UTC))) == {}
    jittered = trigger_fields(IntervalTrigger(hours=1, jitter=120))
    assert jittered == {"every": 3600.0, "grace": 150.0}
    assert "grace" not in trigger_fields(IntervalTrigger(hours=1, jitter=5))
