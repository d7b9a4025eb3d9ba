"""APScheduler 3 triggers as jobpulse schedules, converted field by field.

``CronTrigger`` → ``schedule`` (cron, seconds first when the trigger has a seconds field other
than 0) and ``timezone``; ``IntervalTrigger`` → ``every``; ``DateTrigger`` → unscheduled. The
conversion reads the trigger's parsed fields, never its text: APScheduler numbers weekdays from
Monday = 0 (and ``*/2`` in its day-of-week field means Monday, Wednesday, Friday, Sunday), cron
from Sunday = 0. What cron cannot say (a year or ISO week restriction, an end date, day AND
weekday restrictions) raises :class:`UnsupportedTrigger` naming the reason.
"""

from __future__ import annotations

from datetime import timedelta, timezone, tzinfo
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.cron.expressions import (
    AllExpression,
    LastDayOfMonthExpression,
    RangeExpression,
    WeekdayPositionExpression,
)
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from jobpulse.instrumentation._cron import join_days, render
from jobpulse.instrumentation.errors import InvalidTimezone, UnsupportedSchedule
from jobpulse.instrumentation.spec import check_timezone

# APScheduler calls them triggers; the error is the one the Celery integration raises too.
UnsupportedTrigger = UnsupportedSchedule

__all__ = ["UnsupportedTrigger", "trigger_fields"]

_BOUNDS = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12)}
_MIN_GRACE = 30.0


def _zone_name(tz: tzinfo | None) -> str:
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name is None and isinstance(tz, timezone):
        offset = tz.utcoffset(None)
        if offset == timedelta(0):
            name = "UTC"
        elif offset % timedelta(hours=1) == timedelta(0):
            hours = int(offset / timedelta(hours=1))
            name = f"Etc/GMT{-hours:+d}"  # the Etc zones' signs are inverted
    try:
        return check_timezone(name)
    except InvalidTimezone:
        raise UnsupportedTrigger(f"timezone {tz!r} has no IANA name") from None


def _values(name: str, expressions: list[Any], what: str) -> set[int]:
    lo, hi = _BOUNDS.get(name, (0, 6))
    values: set[int] = set()
    for expr in expressions:
        if isinstance(expr, WeekdayPositionExpression | LastDayOfMonthExpression):
            raise UnsupportedTrigger(f"{what}: {expr} is not allowed in the {name} field")
        if isinstance(expr, RangeExpression):
            first, last = expr.first, expr.last if expr.last is not None else hi
        elif isinstance(expr, AllExpression):
            first, last = lo, hi
        else:
            raise UnsupportedTrigger(f"{what}: {name} expression {expr} is not understood")
        values.update(range(first, last + 1, expr.step or 1))
    return values


def _days(fields: dict[str, Any], what: str) -> tuple[str, str]:
    day, weekday = fields["day"], fields["day_of_week"]
    plain = [e for e in day.expressions if not isinstance(e, WeekdayPositionExpression)]
    positions = [e for e in day.expressions if isinstance(e, WeekdayPositionExpression)]
    last = any(isinstance(e, LastDayOfMonthExpression) for e in plain)
    plain = [e for e in plain if not isinstance(e, LastDayOfMonthExpression)]
    dom = _values("day", plain, what) if plain else set()
    # APScheduler's Monday = 0 is cron's 1; its Sunday = 6 is cron's 0.
    dow = {(d + 1) % 7 for d in _values("day_of_week", weekday.expressions, what)}
    if not positions and not last:
        return join_days(dom, dow, what)
    if dow != set(range(7)):
        raise UnsupportedTrigger(
            f"{what}: day {day} together with day_of_week {weekday} cannot be one cron "
            "expression; restrict only one of the two"
        )
    if dom == set(range(1, 32)):
        return "*", "*"
    dom_parts = [render(dom, 1, 31, star_ok=False)] if dom else []
    dom_text = ",".join(dom_parts + (["L"] if last else [])) or "*"
    dow_parts = [
        f"{(p.weekday + 1) % 7}{'L' if p.option_num == 5 else f'#{p.option_num + 1}'}"
        for p in positions
    ]
    return dom_text, ",".join(dow_parts) or "*"


def _cron_fields(trigger: CronTrigger, what: str) -> dict[str, Any]:
    fields = {f.name: f for f in trigger.fields}
    for name in ("year", "week"):
        if str(fields[name]) != "*":
            raise UnsupportedTrigger(
                f"{what}: a {name} restriction ({fields[name]}) has no cron form"
            )
    if trigger.end_date is not None:
        raise UnsupportedTrigger(f"{what}: an end date ({trigger.end_date}) has no cron form")
    parts = {
        name: render(_values(name, fields[name].expressions, what), *_BOUNDS[name])
        for name in ("second", "minute", "hour", "month")
    }
    dom, dow = _days(fields, what)
    cron = f"{parts['minute']} {parts['hour']} {dom} {parts['month']} {dow}"
    if parts["second"] != "0":
        cron = f"{parts['second']} {cron}"
    return {"schedule": cron, "timezone": _zone_name(trigger.timezone)}


def trigger_fields(trigger: object, what: str = "the trigger") -> dict[str, Any]:
    """The jobpulse job fields for ``trigger`` (empty: unscheduled).

    Raises :class:`UnsupportedTrigger` for a trigger no jobpulse schedule expresses.
    """
    if isinstance(trigger, DateTrigger):
        return {}
    if isinstance(trigger, CronTrigger):
        out = _cron_fields(trigger, what)
    elif isinstance(trigger, IntervalTrigger):
        if trigger.end_date is not None:
            raise UnsupportedTrigger(f"{what}: an end date ({trigger.end_date}) has no form")
        out = {"every": trigger.interval.total_seconds()}
    else:
        raise UnsupportedTrigger(
            f"{what}: {type(trigger).__name__} is not converted (CronTrigger, IntervalTrigger "
            "and DateTrigger are)"
        )
    jitter = getattr(trigger, "jitter", None)
    if jitter and jitter >= _MIN_GRACE:
        # APScheduler fires up to `jitter` seconds after the slot: widen the grace to match.
        out["grace"] = float(jitter) + _MIN_GRACE
    return out
