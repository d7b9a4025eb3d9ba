"""Report Celery 5 tasks and beat entries to jobpulse.

    from celery import Celery
    from jobpulse.instrumentation.celery import instrument

    app = Celery("shop", broker="redis://localhost:6379/0")
    instrument(app)          # in the module every worker and the beat process import

Workers: each task attempt is a run of the job named by the task's name; a retried attempt is a
``retry`` (not a failure), the last failing attempt a failure, a revoked task ``cancelled``.
Beat: each entry is declared under its beat name with its schedule (``crontab`` → cron,
``schedule``/timedelta → ``every``; ``solar`` is refused with a logged reason and the entry is
registered unscheduled) and each message it sends is stamped with its slot, so the worker reports
the run under the entry's name with ``scheduled_for``. If OpenTelemetry's Celery instrumentation
is active, each run's span is a child of the task's span and the run records its trace.
"""

from __future__ import annotations

import threading
from importlib.metadata import version
from typing import Any, Final
from weakref import WeakKeyDictionary

from celery import signals
from opentelemetry import metrics, trace

from jobpulse.instrumentation import EventSink, JobpulseError
from jobpulse.instrumentation.errors import AlreadyInstrumented

from ._beat import BeatStamper
from ._schedules import UnsupportedSchedule, entry_slot, schedule_fields
from ._worker import HEADER_JOB, HEADER_SLOT, Cancelled, TaskReporter, attempt_run_id

__all__ = [
    "HEADER_JOB",
    "HEADER_SLOT",
    "AlreadyInstrumented",
    "Cancelled",
    "UnsupportedSchedule",
    "attempt_run_id",
    "entry_slot",
    "instrument",
    "instruments",
    "schedule_fields",
    "uninstrument",
]

instruments: Final = ("celery >= 5.2, < 6",)
"""The Celery versions this integration supports."""


class _Instrumentation:
    def __init__(self, reporter: TaskReporter, beat: BeatStamper) -> None:
        self.reporter = reporter
        self.beat = beat
        self.connections = (
            (signals.task_prerun, reporter.prerun),
            (signals.task_failure, reporter.failure),
            (signals.task_retry, reporter.retry),
            (signals.task_postrun, reporter.postrun),
            (signals.task_revoked, reporter.revoked),
            (signals.beat_init, beat.beat_init),
            (signals.before_task_publish, beat.before_publish),
        )


_INSTALLED: WeakKeyDictionary[Any, _Instrumentation] = WeakKeyDictionary()
_LOCK = threading.Lock()


def _check_version() -> None:
    installed = version("celery")
    major_minor = tuple(int(p) for p in installed.split(".")[:2] if p.isdigit())
    if not (5, 2) <= major_minor < (6, 0):
        raise JobpulseError(
            f"Celery {installed} is installed; jobpulse's integration supports {instruments[0]}"
        )


def instrument(
    app: Any,
    *,
    client: EventSink | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    prefix: str = "",
) -> None:
    """Report ``app``'s tasks (in workers) and beat entries (in the beat process).

    Raises :class:`AlreadyInstrumented` if ``app`` is already instrumented.
    """
    _check_version()
    with _LOCK:
        if app in _INSTALLED:
            raise AlreadyInstrumented(
                f"Celery app {app.main!r} is already instrumented by jobpulse; "
                "call uninstrument() first"
            )
        reporter = TaskReporter(
            app,
            client=client,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            prefix=prefix,
        )
        installed = _INSTALLED[app] = _Instrumentation(
            reporter, BeatStamper(app, client=client, prefix=prefix)
        )
    for signal, handler in installed.connections:
        signal.connect(handler, weak=False)


def uninstrument(app: Any) -> None:
    """Disconnect exactly the handlers :func:`instrument` connected, and unwrap beat."""
    with _LOCK:
        installed = _INSTALLED.pop(app, None)
    if installed is None:
        return
    for signal, handler in installed.connections:
        signal.disconnect(handler)
    installed.beat.detach()
