"""Hourly statistics: what each rollup row holds and how windows are computed from them.

Durations go into a sparse log-scale histogram (buckets grow by 5%), so p50/p95/p99 over any
window are read from a few hundred integers, never from raw runs. A quantile is reported as
the upper bound of its bucket (at most 5% above the true value) and never above the max.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .tables import Rollup

__all__ = ["WINDOWS", "HourRollup", "Stats", "add_duration", "hour_of", "stats_from_rows"]

WINDOWS: dict[str, int] = {"1h": 1, "24h": 24, "7d": 24 * 7, "30d": 24 * 30}
_GROWTH = 1.05
_MIN = 0.001  # durations below 1 ms share the first bucket


def hour_of(t: float) -> int:
    return int(t // 3600) * 3600


def _bucket(duration: float) -> int:
    if duration <= _MIN:
        return 0
    return math.ceil(math.log(duration / _MIN, _GROWTH))


def _upper(index: int) -> float:
    return float(_MIN * _GROWTH**index)


@dataclass(slots=True, eq=False)
class HourRollup:
    """A job's rollup row of one hour as the engine counts into it: a plain object, not an ORM
    row. The transaction reads the row ahead and writes the changed ones with one statement
    for all of them (``store/tx.py``); an hourly counter row needs none of an ORM row's
    bookkeeping, which cost the applier more than the counting."""

    job_id: int
    hour: int
    success: int = 0
    failure: int = 0
    timeout: int = 0
    cancelled: int = 0
    retry: int = 0
    missed: int = 0
    due: int = 0
    dur_count: int = 0
    dur_sum: float = 0.0
    dur_max: float | None = None
    dur_hist: dict[str, int] | None = None


def add_duration(roll: HourRollup, duration: float) -> None:
    roll.dur_count += 1
    roll.dur_sum += duration
    roll.dur_max = max(roll.dur_max or 0.0, duration)
    hist = dict(roll.dur_hist or {})
    key = str(_bucket(duration))
    hist[key] = hist.get(key, 0) + 1
    roll.dur_hist = hist


@dataclass(slots=True)
class Stats:
    success: int = 0
    failure: int = 0
    timeout: int = 0
    cancelled: int = 0
    retry: int = 0
    missed: int = 0
    due: int = 0
    dur_count: int = 0
    dur_sum: float = 0.0
    dur_max: float | None = None
    hist: dict[int, int] | None = None

    @property
    def finished(self) -> int:
        return self.success + self.failure + self.timeout + self.cancelled

    @property
    def success_ratio(self) -> float | None:
        denominator = self.finished + self.missed
        return self.success / denominator if denominator else None

    @property
    def miss_ratio(self) -> float | None:
        return self.missed / self.due if self.due else None

    def add_duration(self, duration: float) -> None:
        """Count one more duration, as :func:`add_duration` does on a rollup row."""
        self.dur_count += 1
        self.dur_sum += duration
        self.dur_max = max(self.dur_max or 0.0, duration)
        hist = self.hist if self.hist is not None else {}
        index = _bucket(duration)
        hist[index] = hist.get(index, 0) + 1
        self.hist = hist

    def quantile(self, q: float) -> float | None:
        if not self.hist or not self.dur_count:
            return None
        rank = q * self.dur_count
        seen = 0
        for index in sorted(self.hist):
            seen += self.hist[index]
            if seen >= rank:
                upper = _upper(index)
                return min(upper, self.dur_max) if self.dur_max is not None else upper
        return self.dur_max

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": {
                "success": self.success,
                "failure": self.failure,
                "timeout": self.timeout,
                "cancelled": self.cancelled,
                "retry": self.retry,
            },
            "missed": self.missed,
            "due": self.due,
            "success_ratio": self.success_ratio,
            "miss_ratio": self.miss_ratio,
            "duration": {
                "count": self.dur_count,
                "avg": self.dur_sum / self.dur_count if self.dur_count else None,
                "p50": self.quantile(0.5),
                "p95": self.quantile(0.95),
                "p99": self.quantile(0.99),
                "max": self.dur_max,
            },
        }


def window_start(window: str, now: float) -> int:
    """Windows are whole clock hours: ``24h`` is the 24 whole hours before the current one
    plus the current one, so a window always holds at least its full length."""
    return hour_of(now) - WINDOWS[window] * 3600


def stats_from_rows(rows: Iterable[Rollup | HourRollup]) -> Stats:
    st = Stats(hist={})
    assert st.hist is not None
    for r in rows:
        st.success += r.success
        st.failure += r.failure
        st.timeout += r.timeout
        st.cancelled += r.cancelled
        st.retry += r.retry
        st.missed += r.missed
        st.due += r.due
        st.dur_count += r.dur_count
        st.dur_sum += r.dur_sum
        if r.dur_max is not None:
            st.dur_max = max(st.dur_max or 0.0, r.dur_max)
        for key, n in (r.dur_hist or {}).items():
            st.hist[int(key)] = st.hist.get(int(key), 0) + n
    return st
