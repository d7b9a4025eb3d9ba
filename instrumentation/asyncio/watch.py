"""``watch``: report an existing asyncio task as one run, from now until it is done."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from opentelemetry import metrics, trace

from jobpulse.instrumentation import EventSink, Monitor, Run

from .supervise import crash_report

__all__ = ["watch"]


def watch(
    task: asyncio.Task[object],
    name: str,
    *,
    client: EventSink | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    clock: Callable[[], float] = time.time,
) -> Run:
    """Start a run of job ``name`` now; end it when ``task`` ends: ``success``, ``failure``
    (the exception's class and traceback) or ``cancelled``. Returns the run (for
    :meth:`~jobpulse.instrumentation.Run.progress`)."""
    monitor = Monitor(
        name,
        client=client,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        clock=clock,
    )
    coro = task.get_coro()
    function = getattr(coro, "__qualname__", None)
    run = monitor.run(function=function if isinstance(function, str) else None)
    run.begin()

    def done(finished: asyncio.Task[object]) -> None:
        if finished.cancelled():
            run.end(asyncio.CancelledError())
            return
        exc = finished.exception()
        if exc is not None:
            run.fail(crash_report(exc), error_type=type(exc).__name__)
        run.end(None)

    task.add_done_callback(done)
    return run
