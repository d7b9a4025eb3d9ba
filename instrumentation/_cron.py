"""Cron text from sets of field values, with day-of-month / day-of-week semantics kept.

APScheduler and Celery beat match the day of the month AND the day of the week. Cron (and
cronsim, which the sidecar evaluates schedules with) ORs them when both fields are restricted,
and ANDs them when either field starts with ``*``. So a restriction on both is written with one
of them as a ``*/step`` expression when its set of days is one; otherwise the schedule cannot
be expressed and :class:`~jobpulse.instrumentation.errors.UnsupportedSchedule` is raised.
"""

from __future__ import annotations

from jobpulse.instrumentation.errors import UnsupportedSchedule

__all__ = ["join_days", "render"]


def render(values: set[int], lo: int, hi: int, *, star_ok: bool = True) -> str:
    """Compact cron text for ``values`` in ``lo..hi``: ``*``, ``*/5``, ``1-5``, ``1,3,10-12``."""
    ordered = sorted(values)
    if not ordered:
        raise UnsupportedSchedule("a field matches no value")
    if ordered == list(range(lo, hi + 1)):
        return "*"
    if star_ok:
        for step in range(2, hi - lo + 1):
            if ordered == list(range(lo, hi + 1, step)):
                return f"*/{step}"
    if len(ordered) > 2:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], ordered[-1] + 1, step)):
            return f"{ordered[0]}-{ordered[-1]}/{step}"
    parts: list[str] = []
    start = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(parts)


def _dow_star(days: set[int]) -> str | None:
    """``*/k`` when cronsim reads it as exactly ``days`` (0 = Sunday; cron's 7 is Sunday too)."""
    for step in range(2, 8):
        if {d % 7 for d in range(0, 8, step)} == days:
            return f"*/{step}"
    return None


def join_days(dom: set[int] | None, dow: set[int] | None, what: str) -> tuple[str, str]:
    """Day-of-month and day-of-week fields that match when both sets match (None: any day)."""
    if dom is not None and dom == set(range(1, 32)):
        dom = None
    if dow is not None and dow == set(range(7)):
        dow = None
    dom_text = "*" if dom is None else render(dom, 1, 31)
    dow_text = "*" if dow is None else render(dow, 0, 6, star_ok=False)
    if dom is None or dow is None or dom_text.startswith("*"):
        return dom_text, dow_text
    star = _dow_star(dow)
    if star is not None:
        return dom_text, star
    raise UnsupportedSchedule(
        f"{what} runs on days {dom_text} of the month only when they are also weekdays "
        f"{dow_text} (0 = Sunday); cron runs when either matches, so no cron expression says "
        "this; restrict only one of the two"
    )
