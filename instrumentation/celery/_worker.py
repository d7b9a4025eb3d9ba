"""The worker side: Celery's task signals in, one jobpulse run per attempt out.

Each attempt of a task is its own run, ``run_id`` a UUIDv5 of the task id and the attempt
(``request.retries + 1``), so the events of one attempt pair up and a redelivered message never
opens a second run. An attempt that ends in ``Retry`` is a failure with ``will_retry`` (counted
as ``retry``, not as a failure); the attempt that finally fails is the failure; a revoked task is
``cancelled``. Messages sent by beat carry the beat entry's job name and slot in their headers
(see ``_beat``): their runs are reported under that job with ``scheduled_for``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any, Final

from opentelemetry import metrics, trace

from jobpulse.instrumentation import EventSink, JobpulseError, Monitor, Run

__all__ = ["HEADER_JOB", "HEADER_SLOT", "Cancelled", "TaskReporter", "attempt_run_id"]

log = logging.getLogger("jobpulse.instrumentation.celery")
NAMESPACE: Final = uuid.UUID("2f0c7d4e-91b3-5a6c-8e2d-4b7a1c9e3f60")
HEADER_JOB: Final = "jobpulse_job"
HEADER_SLOT: Final = "jobpulse_scheduled_for"


class Cancelled(asyncio.CancelledError):
    """How the run of a revoked (or ignored) task ends: jobpulse reports it ``cancelled``."""


def attempt_run_id(task_id: str, attempt: int) -> str:
    """The run id of attempt ``attempt`` (1 for the first) of task ``task_id``."""
    return str(uuid.uuid5(NAMESPACE, f"{task_id}\x00{attempt}"))


def _header(request: Any, name: str) -> Any:
    if isinstance(request, dict):
        return request.get(name)
    value = getattr(request, name, None)
    if value is None:
        headers = getattr(request, "headers", None) or getattr(request, "request_dict", None)
        if isinstance(headers, dict):
            value = headers.get(name)
    return value


class TaskReporter:
    """Signal handlers for the tasks of one Celery app (other apps' tasks are ignored)."""

    def __init__(
        self,
        app: Any,
        *,
        client: EventSink | None,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
        prefix: str,
    ) -> None:
        self.app = app
        self._client = client
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._prefix = prefix
        self._lock = threading.Lock()
        self._monitors: dict[str, Monitor | None] = {}
        self._runs: dict[str, Run] = {}
        self._failures: dict[str, BaseException] = {}

    def ours(self, task: Any) -> bool:
        return task is not None and getattr(task, "app", None) is self.app

    def monitor(self, name: str) -> Monitor | None:
        """The monitor of job ``name`` (prefixed, case-folded); None, logged once, if invalid."""
        with self._lock:
            if name in self._monitors:
                return self._monitors[name]
        try:
            found: Monitor | None = Monitor(
                self._prefix + name,
                client=self._client,
                tracer_provider=self._tracer_provider,
                meter_provider=self._meter_provider,
            )
        except JobpulseError as exc:
            log.warning("jobpulse: Celery task %r is not reported: %s", name, exc)
            found = None
        with self._lock:
            return self._monitors.setdefault(name, found)

    def _new_run(self, task: Any, task_id: str, request: Any) -> Run | None:
        beat_job = _header(request, HEADER_JOB)
        monitor = self.monitor(beat_job) if isinstance(beat_job, str) else None
        if monitor is None:
            monitor = self.monitor(task.name)
        if monitor is None:
            return None
        attempt = int(_header(request, "retries") or 0) + 1
        slot = _header(request, HEADER_SLOT)
        return monitor.run(
            run_id=attempt_run_id(task_id, attempt),
            attempt=attempt,
            scheduled_for=float(slot) if isinstance(slot, int | float | str) else None,
            function=task.name,
        )

    # -- signal handlers (connected with weak=False by instrument()) ------------------------
    def prerun(self, sender: Any = None, task_id: str = "", task: Any = None, **_: Any) -> None:
        task = task or sender
        if not self.ours(task):
            return
        run = self._new_run(task, task_id, task.request)
        if run is None:
            return
        with self._lock:
            self._runs[task_id] = run
        run.begin()

    def failure(
        self, sender: Any = None, task_id: str = "", exception: Any = None, **_: Any
    ) -> None:
        if self.ours(sender) and isinstance(exception, BaseException):
            with self._lock:
                self._failures[task_id] = exception

    def retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        if not self.ours(sender) or request is None:
            return
        with self._lock:
            run = self._runs.get(getattr(request, "id", ""))
        if run is not None:
            run.will_retry = True
            etype = type(reason).__name__ if isinstance(reason, BaseException) else "Retry"
            run.fail(str(reason) if reason is not None else "retry", error_type=etype)

    def postrun(
        self, sender: Any = None, task_id: str = "", state: str | None = None, **_: Any
    ) -> None:
        with self._lock:
            run = self._runs.pop(task_id, None)
            exc = self._failures.pop(task_id, None)
        if run is None:
            return
        if state in ("IGNORED", "REJECTED"):
            exc = Cancelled(f"task {state.lower()}")
        run.end(exc)

    def revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        expired: bool = False,
        **_: Any,
    ) -> None:
        task = sender if sender is not None else getattr(request, "task", None)
        task_id = getattr(request, "id", None)
        if not self.ours(task) or not isinstance(task_id, str):
            return
        with self._lock:
            run = self._runs.pop(task_id, None)
        if run is None:
            run = self._new_run(task, task_id, getattr(request, "request_dict", None) or request)
            if run is None:
                return
            run.begin()
        how = "expired" if expired else "terminated" if terminated else "revoked"
        run.end(Cancelled(f"task {how}"))
