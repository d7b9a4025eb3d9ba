"""Injected time. The sidecar never calls ``time.time()`` outside :class:`SystemClock`."""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, UTC."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to (tests, `jobpulse replay`)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def set(self, value: float) -> None:
        with self._lock:
            if value < self._now:
                raise ValueError(f"a manual clock only moves forward ({value} < {self._now})")
            self._now = value

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
