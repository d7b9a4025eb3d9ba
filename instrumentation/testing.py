"""Test helpers for users of jobpulse: record heartbeats in memory instead of sending them.

Example::

    from jobpulse.instrumentation import monitor
    from jobpulse.instrumentation.testing import InMemoryClient

    def test_nightly_report_reports_success():
        client = InMemoryClient()
        nightly_report = monitor("nightly-report", schedule="0 3 * * *", client=client)(build)
        nightly_report()
        assert client.types("nightly-report") == ["start", "success"]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ._sink import ClientStats
from .wire import Event

__all__ = ["InMemoryClient"]


class InMemoryClient:
    """An :class:`~jobpulse.instrumentation.EventSink` that keeps every event it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self.closed = False

    @property
    def events(self) -> list[Event]:
        """A copy of every event emitted so far, in emit order."""
        with self._lock:
            return list(self._events)

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(sent=len(self._events))

    def emit(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def filter(
        self,
        job: str | None = None,
        *,
        type: str | Iterable[str] | None = None,
        run_id: str | None = None,
    ) -> list[Event]:
        """Events matching every criterion given (``type`` may name several)."""
        types = {type} if isinstance(type, str) else set(type) if type is not None else None
        return [
            e
            for e in self.events
            if (job is None or e.job == job)
            and (types is None or e.type in types)
            and (run_id is None or e.run_id == run_id)
        ]

    def types(self, job: str | None = None) -> list[str]:
        """The event types in emit order, e.g. ``["start", "success"]``."""
        return [e.type for e in self.filter(job)]

    def runs(self, job: str | None = None) -> dict[str, list[Event]]:
        """Events grouped by run_id, runs in order of their first event."""
        out: dict[str, list[Event]] = {}
        for event in self.filter(job):
            out.setdefault(event.run_id, []).append(event)
        return out

    def finished(self, job: str | None = None) -> list[Event]:
        """The finish events (success, failure, cancelled)."""
        return self.filter(job, type=("success", "failure", "cancelled"))
