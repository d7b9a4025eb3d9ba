"""When a job should run: cron (via cronsim, in the job's timezone), ``every``, or never.

A :class:`Schedule` answers "which slots lie in [lo, hi]", "the next slot after t" and "the
latest slot at or before t", in epoch seconds. Cron expressions are evaluated with cronsim's
rules, which follow Debian cron across DST: a fixed local time skipped by spring-forward fires
at the next valid minute, a fixed local time that repeats fires once, and an expression with
``*`` or a step in the hour field follows elapsed time.

``every`` schedules are anchored on runs (see the engine), so their slots depend on job state;
:class:`Schedule` only carries the interval for them.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from cronsim import CronSim

from jobpulse.instrumentation.spec import MIN_EVERY, check_cron, check_timezone

__all__ = ["Schedule", "default_early_tolerance", "default_grace", "default_max_runtime"]

# cronsim gives up after 50 years without a match; we never look that far.
_HORIZON = 50 * 366 * 86400.0


_MEMO = 65536  # slots memoised per schedule, each way, before its memo starts over
_UNKNOWN = -1.0  # not memoised (slots are epoch seconds, never negative)


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    # Memoised (cron only): t -> the first slot after t, and t -> the latest slot at or before
    # t. Slots repeat across events: a slot's period, grace and early tolerance are asked for
    # by every run near it. Kept on the schedule, keyed by t alone, rather than in a cache
    # keyed by (schedule, t), which would hash the schedule's fields in Python on every
    # lookup (a few per event applied). Not part of the schedule's value.
    _after: dict[float, float | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _before: dict[float, float | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @staticmethod
    def of(cron: str | None, every: float | None, timezone: str = "UTC") -> Schedule:
        """The schedule of validated job fields. An ``every`` below :data:`MIN_EVERY` (stored
        before that minimum was enforced) is evaluated as the minimum, never as a flood of
        missed slots."""
        if cron is not None:
            return _checked_cron(cron, timezone)
        if every is not None and 0 < every < MIN_EVERY:
            every = MIN_EVERY
        return Schedule(None, every, timezone)

    @property
    def kind(self) -> str:
        return "cron" if self.cron else "every" if self.every else "none"

    @property
    def text(self) -> str:
        if self.cron:
            return self.cron
        if self.every:
            from jobpulse.instrumentation.spec import format_duration

            return f"every {format_duration(self.every)}"
        return ""

    def _tz(self) -> zoneinfo.ZoneInfo | None:
        return None if self.timezone == "UTC" else zoneinfo.ZoneInfo(self.timezone)

    def _iter(self, start: float, *, reverse: bool = False) -> Iterator[float]:
        assert self.cron is not None
        tz = self._tz() or UTC
        it = CronSim(self.cron, datetime.fromtimestamp(start, tz), reverse=reverse)
        try:
            for dt in it:
                yield dt.timestamp()
        except StopIteration:  # pragma: no cover - cronsim's 50-year horizon
            return

    def next_after(self, t: float) -> float | None:
        """The first slot strictly after ``t`` (cron only)."""
        s = self._after.get(t, _UNKNOWN)  # one lookup: another thread may start the memo over
        return self._find_after(t) if s == _UNKNOWN else s

    def _find_after(self, t: float) -> float | None:
        # cronsim drops sub-second precision and then ticks forward, so starting from
        # floor(t) yields slots > floor(t); skip any that are not > t.
        found = next((s for s in self._iter(math.floor(t)) if s > t), None)
        return _memoise(self._after, t, found)

    def _find_at_or_before(self, t: float) -> float | None:
        found = next((s for s in self._iter(math.floor(t) + 1, reverse=True) if s <= t), None)
        return _memoise(self._before, t, found)

    def at_or_after(self, t: float) -> float | None:
        return self.next_after(math.ceil(t) - 1)

    def at_or_before(self, t: float) -> float | None:
        """The latest slot at or before ``t`` (cron only).

        Found from the latest slot at or before the start of ``t``'s minute (memoised, since
        events arrive close together) and then forward, slot by memoised slot, up to ``t``."""
        minute = math.floor(t / 60) * 60
        s = self._before.get(minute, _UNKNOWN)
        if s == _UNKNOWN:
            s = self._find_at_or_before(minute)
        while s is not None:
            nxt = self.next_after(s)
            if nxt is None or nxt > t:
                return s
            s = nxt
        return None  # pragma: no cover - cronsim's 50-year horizon

    def between(self, lo: float, hi: float) -> Iterator[float]:
        """Slots ``s`` with ``lo <= s <= hi``, ascending (cron only)."""
        s = self.at_or_before(lo)
        if s is None or s < lo:
            s = self.next_after(math.ceil(lo) - 1 if s is None else s)
        while s is not None and s <= hi:
            yield s
            s = self.next_after(s)

    def period(self, s: float) -> float:
        """The gap from slot ``s`` to the next slot."""
        if self.every:
            return self.every
        nxt = self.next_after(s)
        return (nxt - s) if nxt is not None else _HORIZON


def _memoise(memo: dict[float, float | None], t: float, slot: float | None) -> float | None:
    if len(memo) >= _MEMO:
        memo.clear()
    memo[t] = slot
    return slot


@lru_cache(maxsize=4096)
def _checked_cron(cron: str, timezone: str) -> Schedule:
    # Validating an expression runs cronsim over it (~0.1 ms): once per distinct one, not once
    # per job of a fleet that shares a few schedules. Invalid ones raise and are not cached.
    return _cron_schedule(check_cron(cron), check_timezone(timezone))


@lru_cache(maxsize=4096)
def _cron_schedule(cron: str, timezone: str) -> Schedule:
    return Schedule(cron, None, timezone)


def default_grace(period: float) -> float:
    """10% of the period, clamped to [30 s, 1 h] and never above half the period."""
    return min(max(0.1 * period, 30.0), 3600.0, period / 2)


def default_early_tolerance(period: float) -> float:
    return min(60.0, 0.1 * period)


def default_max_runtime(period: float) -> float:
    return 0.9 * period
