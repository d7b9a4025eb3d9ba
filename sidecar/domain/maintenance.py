"""Maintenance windows: when a window is open, and which jobs it holds.

A window is open over half-open spans ``[opening, closing)``:

- **one-off** (the file's ``start:``, or the admin API): from its start for ``duration``;
- **recurring** (``schedule:``): it opens at every fire time of its cron expression, evaluated
  in the window's timezone with the same rules as a job's schedule (cronsim: a fixed local time
  skipped by spring-forward opens at the jump, one that repeats opens once).

``duration`` is counted on the **local clock** of the window's timezone, as Alertmanager's
time intervals count: ``0 2 * * *`` + ``2h`` in Europe/Riga is 02:00-04:00 local every night,
one real hour on the spring-forward night and three on the fall-back night. A window closes at
the first instant after its opening at which the local clock reads opening + duration; when
the clock jumps over that reading (spring-forward), at the jump. A fixed-time expression whose
time the spring-forward jump skips opens at the jump and counts from the skipped time (``30 3``
+ ``1h`` in Riga is 04:00-04:30 that night), as Alertmanager does. In UTC (the API's windows)
local and elapsed time are the same.

A window **holds** a job named in its ``jobs`` or whose labels hold every pair of its
``match``. The engine (:mod:`.maintained`) decides what an open window does to a job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from ..maintenance_config import WindowSpec
from .schedule import Schedule
from .tables import MaintenanceRow

__all__ = ["Window", "closing_after", "is_open", "next_change", "open_until", "overlapping"]

# A recurring window's openings looked at before an instant: enough for any window whose
# duration is shorter than 1,000 periods of its schedule (a longer one is open throughout).
_SCAN = 1000
_DST_SLACK = 3 * 3600.0  # local time differs from elapsed time by at most this


@dataclass(frozen=True, slots=True)
class Window:
    """A window the engine judges with: ``key`` is ``config:<name>`` or ``api:<id>``."""

    key: str
    jobs: frozenset[str] = frozenset()
    match: tuple[tuple[str, str], ...] = ()
    start: float | None = None  # one-off: its span is [start, end)
    end: float | None = None
    schedule: Schedule | None = None  # recurring
    duration: float = 0.0
    reason: str | None = None

    @staticmethod
    def from_spec(spec: WindowSpec) -> Window:
        jobs, key = frozenset(spec.jobs), f"config:{spec.name}"
        if spec.schedule is not None:
            schedule = Schedule.of(spec.schedule, None, spec.timezone)
            return Window(key, jobs, spec.match, schedule=schedule, duration=spec.duration)
        assert spec.start is not None
        end = closing_after(spec.start, spec.duration, _zone(spec.timezone))
        return Window(key, jobs, spec.match, start=spec.start, end=end, duration=spec.duration)

    @staticmethod
    def from_row(row: MaintenanceRow) -> Window:
        """A window created through the admin API (UTC: its span is elapsed time)."""
        return Window(
            key=f"api:{row.id}",
            jobs=frozenset(row.jobs or ()),
            match=tuple(sorted((row.match or {}).items())),
            start=row.starts_at,
            end=row.ends_at,
            duration=row.ends_at - row.starts_at,
            reason=row.reason,
        )

    def holds(self, name: str, labels: Mapping[str, str]) -> bool:
        if name in self.jobs:
            return True
        return bool(self.match) and all(labels.get(k) == v for k, v in self.match)

    def span_at(self, t: float) -> tuple[float, float] | None:
        """A span of this window that is open at ``t``, or None."""
        if self.schedule is None:
            assert self.start is not None
            assert self.end is not None
            return (self.start, self.end) if self.start <= t < self.end else None
        zone = _zone(self.schedule.timezone)
        # Spans close in the order they open, but for a daylight-saving change (local time).
        oldest = t - self.duration - (_DST_SLACK if zone is not None else 0.0)
        s = self.schedule.at_or_before(t)
        for _ in range(_SCAN):
            if s is None or s <= oldest:
                return None
            end = self._closing(s, zone)
            if t < end:
                return s, end
            s = self.schedule.at_or_before(s - 1)
        return None

    def next_span(self, t: float) -> tuple[float, float] | None:
        """The span open at ``t``, else the next one to open after it."""
        span = self.span_at(t)
        if span is not None:
            return span
        opening = self._next_opening(t)
        if opening is None:
            return None
        if self.schedule is None:
            assert self.end is not None
            return opening, self.end
        return opening, self._closing(opening, _zone(self.schedule.timezone))

    def _closing(self, opening: float, zone: ZoneInfo | None) -> float:
        assert self.schedule is not None
        assert self.schedule.cron is not None
        if zone is None:
            return opening + self.duration
        return closing_after(
            opening, self.duration, zone, local=_nominal(self.schedule.cron, opening, zone)
        )

    def _next_opening(self, t: float) -> float | None:
        if self.schedule is None:
            assert self.start is not None
            return self.start if self.start > t else None
        return self.schedule.next_after(t)

    def overlaps(self, lo: float, hi: float) -> bool:
        """Open at some instant of ``[lo, hi]``."""
        if self.span_at(lo) is not None:
            return True
        opening = self._next_opening(lo)
        return opening is not None and opening <= hi

    def next_boundary(self, t: float) -> float | None:
        """The first instant after ``t`` at which this window opens or closes."""
        span = self.span_at(t)
        opening = self._next_opening(t)
        found = [x for x in (span[1] if span else None, opening) if x is not None and x > t]
        return min(found, default=None)


def _zone(timezone: str) -> ZoneInfo | None:
    return None if timezone == "UTC" else ZoneInfo(timezone)


def _nominal(cron: str, opening: float, zone: ZoneInfo) -> datetime:
    """The local time a span opened at: the clock's, or, for a fixed-time expression that the
    spring-forward jump skipped (it opens at the jump), the skipped time it names."""
    local = datetime.fromtimestamp(opening, zone).replace(tzinfo=None)
    hour = cron.split()[-4]
    if "*" in hour or "/" in hour:
        return local  # follows elapsed time: opens at the times the clock shows
    before = datetime.fromtimestamp(opening - 1, zone).replace(tzinfo=None)
    if local - before <= timedelta(seconds=1):
        return local  # no jump just before the opening
    named = next(CronSim(cron, before.replace(tzinfo=UTC))).replace(tzinfo=None)
    return named if named < local else local


def closing_after(
    opening: float, duration: float, zone: ZoneInfo | None, *, local: datetime | None = None
) -> float:
    """When a span opened at ``opening`` closes: the first instant after it at which the local
    clock reads the opening's local time (``local``, when it is not the clock's) + ``duration``
    (in a spring-forward gap: the jump)."""
    if zone is None:
        return opening + duration
    wanted = local or datetime.fromtimestamp(opening, zone).replace(tzinfo=None)
    wanted += timedelta(seconds=duration)
    found = []
    for fold in (0, 1):
        t = wanted.replace(tzinfo=zone, fold=fold).timestamp()
        if datetime.fromtimestamp(t, zone).replace(tzinfo=None) == wanted and t > opening:
            found.append(t)
    if found:
        return min(found)
    # The clock jumps over `wanted`: the first instant whose local time is later is the jump,
    # between the reading taken with the offset after it and the one taken with the one before.
    lo = wanted.replace(tzinfo=zone, fold=1).timestamp()
    hi = wanted.replace(tzinfo=zone, fold=0).timestamp()
    if not lo < hi:
        return opening + duration  # pragma: no cover - not a gap after all
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wanted:
            hi = mid
        else:
            lo = mid
    return max(hi, opening)


def is_open(windows: Iterable[Window], t: float) -> bool:
    return any(w.span_at(t) is not None for w in windows)


def overlapping(windows: Iterable[Window], lo: float, hi: float) -> bool:
    """Some window is open at some instant of ``[lo, hi]``."""
    return any(w.overlaps(lo, hi) for w in windows)


def open_until(windows: Iterable[Window], t: float) -> float:
    """The first instant at or after ``t`` at which none of ``windows`` is open (``t`` itself
    when none is open then); windows that follow one another without a gap count as one."""
    chosen = list(windows)
    for _ in range(_SCAN):
        ends = [span[1] for w in chosen if (span := w.span_at(t)) is not None]
        if not ends:
            return t
        t = max(ends)
    return t


def next_change(windows: Iterable[Window], t: float) -> float | None:
    """The first instant after ``t`` at which one of ``windows`` opens or closes."""
    return min((b for w in windows if (b := w.next_boundary(t)) is not None), default=None)
