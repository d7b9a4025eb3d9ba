"""``monitor``: report a job's runs as heartbeats, a span and metrics.

As a decorator it understands plain functions, ``async def``, generators and async generators
(a generator's run lasts from its first step until it is exhausted or closed; closing it early
reports ``cancelled``). As a context manager, sync or async, it yields the :class:`Run`. Every
call is its own run with its own ``run_id``: per-call state lives in the :class:`Run` (and, for
``with monitor(...)``, in a context variable), never on the monitor, so overlapping runs of one
job stay apart. Integrations that know the attempt or the scheduled time use :meth:`Monitor.run`.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Coroutine, Mapping
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry import metrics, trace

from ._generators import wrap_async_generator, wrap_generator
from ._job import JobContext
from ._run import Run
from ._sink import EventSink

__all__ = ["Monitor", "monitor"]

P = ParamSpec("P")
R = TypeVar("R")

# Runs entered with `with monitor(...)`, innermost last, per context (thread or asyncio task).
_ENTERED: ContextVar[tuple[tuple[Monitor, Run], ...]] = ContextVar("jobpulse_runs", default=())


class Monitor:
    """Reports the runs of job ``name``; the job fields are declared to the sidecar.

    Raises :class:`~jobpulse.instrumentation.errors.InvalidName` or
    :class:`~jobpulse.instrumentation.errors.InvalidJobConfig` here, when a field is invalid.
    """

    def __init__(
        self,
        name: str,
        *,
        schedule: str | None = None,
        every: str | float | None = None,
        timezone: str | None = None,
        grace: str | float | None = None,
        early_tolerance: str | float | None = None,
        max_runtime: str | float | None = None,
        heartbeat_timeout: str | float | None = None,
        max_silence: str | float | None = None,
        failure_threshold: int | None = None,
        recovery_threshold: int | None = None,
        concurrency: str | None = None,
        labels: Mapping[str, str] | None = None,
        client: EventSink | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        fields = {
            "schedule": schedule,
            "every": every,
            "timezone": timezone,
            "grace": grace,
            "early_tolerance": early_tolerance,
            "max_runtime": max_runtime,
            "heartbeat_timeout": heartbeat_timeout,
            "max_silence": max_silence,
            "failure_threshold": failure_threshold,
            "recovery_threshold": recovery_threshold,
            "concurrency": concurrency,
            "labels": labels,
        }
        self._job = JobContext(
            name,
            fields,
            client=client,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            clock=clock,
            monotonic=monotonic,
        )

    @property
    def name(self) -> str:
        return self._job.name

    @property
    def config(self) -> dict[str, Any]:
        """The declared job fields, normalised (durations in seconds)."""
        return dict(self._job.config)

    @property
    def instrumentation_errors(self) -> int:
        """How often instrumentation failed (logged once per kind; the jobs were unaffected)."""
        return self._job.errors

    def run(
        self,
        *,
        run_id: str | None = None,
        attempt: int | None = None,
        will_retry: bool = False,
        scheduled_for: float | datetime | None = None,
        function: str | None = None,
    ) -> Run:
        """A new run to enter with ``with`` / ``async with``.

        ``scheduled_for`` is the slot the scheduler fired for (epoch seconds or an aware
        datetime; a naive one is taken as UTC). ``will_retry`` (also settable on the run before
        it ends) turns a failure into a retried attempt.
        """
        return Run(
            self._job,
            function=function,
            run_id=run_id,
            attempt=attempt,
            will_retry=will_retry,
            scheduled_for=scheduled_for,
        )

    def __enter__(self) -> Run:
        run = self.run()
        _ENTERED.set((*_ENTERED.get(), (self, run)))
        return run.__enter__()

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        entered = _ENTERED.get()
        for i in range(len(entered) - 1, -1, -1):
            if entered[i][0] is self:
                run = entered[i][1]
                _ENTERED.set(entered[:i] + entered[i + 1 :])
                run.__exit__(typ, exc, tb)
                return
        self._job.report("leaving", RuntimeError("no run of this monitor was entered here"))

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(typ, exc, tb)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap ``func`` so that each call (or iteration, for generators) is one run."""
        function = f"{func.__module__}.{func.__qualname__}"
        if inspect.isasyncgenfunction(func):
            wrapped: Callable[..., Any] = wrap_async_generator(
                func, functools.partial(self.run, function=function)
            )
        elif inspect.isgeneratorfunction(func):
            wrapped = wrap_generator(func, functools.partial(self.run, function=function))
        elif inspect.iscoroutinefunction(func):
            wrapped = self._wrap_coroutine(func, function)
        else:
            wrapped = self._wrap_function(func, function)
        return cast(Callable[P, R], functools.wraps(func)(wrapped))

    def _wrap_function(self, func: Callable[..., Any], function: str) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.run(function=function):
                return func(*args, **kwargs)

        return wrapper

    def _wrap_coroutine(
        self, func: Callable[..., Coroutine[Any, Any, Any]], function: str
    ) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.run(function=function):
                return await func(*args, **kwargs)

        return wrapper


monitor = Monitor
"""``monitor(name, **fields)`` — the decorator / context manager (an alias of Monitor)."""
