"""Slow runs: a finished run that took far longer than the job usually does.

A run is **slow** when its duration exceeds ``factor`` x the job's p95 duration over the
``window`` before it arrived, read from the hourly rollups (:class:`~.rollup.Stats`, the same
percentile as the stats API), and only once that window holds ``min_runs`` durations. The run
is judged before its own duration is counted, so it never raises its own bar. The window is
whole clock hours, as the stats windows are: ``7d`` is the 168 hours before the current one
plus the current one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .jobconfig import Anomaly
from .rollup import hour_of

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["is_slow", "window_hour"]

_QUANTILE = 0.95


def window_hour(anomaly: Anomaly, now: float) -> int:
    """The first hour of the window a run arriving at ``now`` is compared with."""
    return hour_of(now) - math.ceil(anomaly.window / 3600) * 3600


def is_slow(tx: Tx, job_id: int, anomaly: Anomaly, duration: float, now: float) -> bool:
    """Whether ``duration`` is slow against the job's history before it."""
    history = tx.duration_window(job_id, window_hour(anomaly, now))
    if history.dur_count < anomaly.min_runs:
        return False
    p95 = history.quantile(_QUANTILE)
    return p95 is not None and duration > anomaly.factor * p95
