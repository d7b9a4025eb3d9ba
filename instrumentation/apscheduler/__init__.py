"""Report APScheduler 3 jobs to jobpulse: runs, failures, misfires and schedules.

    from apscheduler.schedulers.background import BackgroundScheduler
    from jobpulse.instrumentation.apscheduler import instrument

    scheduler = BackgroundScheduler()
    scheduler.add_job(rebuild_index, "cron", hour=3, id="rebuild-index")
    instrument(scheduler)
    scheduler.start()

Each job is reported under its job id (with ``prefix``, case-folded; a job whose id is not a
valid jobpulse name is skipped with a warning); a job added without an id (APScheduler then
makes up a random one on every start) is reported as its callable's ``module.qualname``
instead, so a restart keeps reporting the same job. Its trigger is declared as its schedule,
and each execution is a run whose ``scheduled_for`` is APScheduler's scheduled run time. A
raising job is a failure carrying the exception's class and text; a misfire is a ``missed``
slot (reason ``misfire``), a run skipped at ``max_instances`` a ``missed`` slot with reason
``max_instances``. Works with every APScheduler 3 scheduler (background, asyncio, blocking...).
"""

from __future__ import annotations

import threading
from importlib.metadata import version
from typing import Any, Final
from weakref import WeakKeyDictionary

from opentelemetry import metrics, trace

from jobpulse.instrumentation import EventSink, JobpulseError
from jobpulse.instrumentation.errors import AlreadyInstrumented

from ._listener import MASK, SchedulerListener, run_id
from ._triggers import UnsupportedTrigger, trigger_fields

__all__ = [
    "AlreadyInstrumented",
    "UnsupportedTrigger",
    "instrument",
    "instruments",
    "progress",
    "run_id",
    "trigger_fields",
    "uninstrument",
]

instruments: Final = ("apscheduler >= 3.10, < 4",)
"""The APScheduler versions this integration supports."""

_LISTENERS: WeakKeyDictionary[Any, SchedulerListener] = WeakKeyDictionary()
_LOCK = threading.Lock()


def _check_version() -> None:
    installed = version("apscheduler")
    major_minor = tuple(int(p) for p in installed.split(".")[:2] if p.isdigit())
    if not (3, 10) <= major_minor < (4, 0):
        raise JobpulseError(
            f"APScheduler {installed} is installed; jobpulse's integration supports "
            f"{instruments[0]}"
        )


def instrument(
    scheduler: Any,
    *,
    client: EventSink | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    prefix: str = "",
) -> None:
    """Report ``scheduler``'s jobs, those it has now and those added later.

    Raises :class:`AlreadyInstrumented` if ``scheduler`` is already instrumented.
    """
    _check_version()
    with _LOCK:
        if scheduler in _LISTENERS:
            raise AlreadyInstrumented(
                f"{scheduler!r} is already instrumented by jobpulse; call uninstrument() first"
            )
        listener = SchedulerListener(
            scheduler,
            client=client,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            prefix=prefix,
        )
        _LISTENERS[scheduler] = listener
    scheduler.add_listener(listener, MASK)
    for job in scheduler.get_jobs():
        listener.declare(job)


def uninstrument(scheduler: Any) -> None:
    """Remove exactly the listener :func:`instrument` added (nothing if there is none)."""
    with _LOCK:
        listener = _LISTENERS.pop(scheduler, None)
    if listener is not None:
        scheduler.remove_listener(listener)


def progress(
    scheduler: Any, job_id: str, message: str | None = None, count: int | None = None
) -> None:
    """Send a progress heartbeat for the running run of job ``job_id``, from inside the job
    (keeps a long run from going stale). Does nothing if ``scheduler`` is not instrumented."""
    listener = _LISTENERS.get(scheduler)
    if listener is not None:
        listener.progress(job_id, message, count)
