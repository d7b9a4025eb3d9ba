"""The beat side: declare each beat entry's schedule and stamp each message with its slot.

Beat sends no scheduled time, so in the beat process (``beat_init``) the scheduler's
``apply_entry`` is wrapped: while it sends a due entry, a context variable holds the entry's job
name and slot, and the ``before_task_publish`` handler copies them into the message's headers
(``jobpulse_job``, ``jobpulse_scheduled_for``), which the worker side reads. Each entry is
declared once under its beat name, with its schedule, by a ``log`` event carrying ``job_config``
(it registers the job without opening a run), so an entry whose tasks never run is missed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jobpulse.instrumentation import Event, EventSink, JobpulseError, Monitor, get_client

from ._schedules import UnsupportedSchedule, entry_slot, schedule_fields
from ._worker import HEADER_JOB, HEADER_SLOT

__all__ = ["BeatStamper"]

log = logging.getLogger("jobpulse.instrumentation.celery")
_SENDING: ContextVar[tuple[str, float | None] | None] = ContextVar("jobpulse_beat", default=None)


class BeatStamper:
    """Wraps the beat schedulers of one app; stamps the messages they send."""

    def __init__(
        self,
        app: Any,
        *,
        client: EventSink | None,
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._declared: dict[str, tuple[str, dict[str, Any]] | None] = {}
        self._wrapped: list[Any] = []

    # -- signal handlers --------------------------------------------------------------------
    def beat_init(self, sender: Any = None, **_: Any) -> None:
        if sender is None or getattr(sender, "app", None) is not self.app:
            return
        self.attach(sender.scheduler)

    def before_publish(self, headers: dict[str, Any] | None = None, **_: Any) -> None:
        sending = _SENDING.get()
        if sending is None or headers is None:
            return
        name, slot = sending
        headers[HEADER_JOB] = name
        if slot is not None:
            headers[HEADER_SLOT] = slot

    # -- the scheduler ----------------------------------------------------------------------
    def attach(self, scheduler: Any) -> None:
        """Declare ``scheduler``'s entries and stamp what it sends (undone by :meth:`detach`)."""
        if "apply_entry" in vars(scheduler):
            return
        original = scheduler.apply_entry

        def apply_entry(entry: Any, producer: Any = None) -> Any:
            token = _SENDING.set(self._sending(entry))
            try:
                return original(entry, producer=producer)
            finally:
                _SENDING.reset(token)

        scheduler.apply_entry = apply_entry
        self._wrapped.append(scheduler)
        for entry in list(scheduler.schedule.values()):
            self.declare(entry)

    def detach(self) -> None:
        for scheduler in self._wrapped:
            vars(scheduler).pop("apply_entry", None)
        self._wrapped.clear()

    def declare(self, entry: Any) -> tuple[str, dict[str, Any]] | None:
        """The entry's job name and fields; the first time, also sent to the sidecar."""
        key = f"{entry.name}\x00{entry.schedule!r}"
        with self._lock:
            if key in self._declared:
                return self._declared[key]
        what = f"beat entry {entry.name!r}"
        try:
            fields = schedule_fields(entry.schedule, what)
        except UnsupportedSchedule as exc:
            log.warning("jobpulse: %s; it is registered unscheduled", exc)
            fields = {}
        found: tuple[str, dict[str, Any]] | None
        try:
            monitor = Monitor(self._prefix + entry.name, client=self._client, **fields)
            found = (entry.name, monitor.config)
        except JobpulseError as exc:
            log.warning("jobpulse: %s is not reported: %s", what, exc)
            found = None
        with self._lock:
            first = key not in self._declared
            self._declared[key] = found
        if first and found is not None:
            sink = self._client if self._client is not None else get_client()
            sink.emit(
                Event(
                    type="log",
                    job=monitor.name,
                    run_id=str(uuid.uuid4()),
                    ts=self._clock(),
                    host=socket.gethostname()[:255],
                    pid=os.getpid(),
                    message="declared by celery beat",
                    job_config=monitor.config or None,
                )
            )
        return found

    def _sending(self, entry: Any) -> tuple[str, float | None] | None:
        try:
            found = self.declare(entry)
            if found is None:
                return None
            name, fields = found
            return name, entry_slot(fields, entry.last_run_at, self._clock())
        except Exception:
            log.exception("jobpulse: could not stamp beat entry %r", getattr(entry, "name", "?"))
            return None
