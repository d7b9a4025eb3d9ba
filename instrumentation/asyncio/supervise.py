"""``supervise``: run a long-lived background coroutine, report each incarnation, restart crashes.

Each incarnation of the coroutine is one run of job ``name``: a crash is a ``failure`` carrying
the exception's class and traceback, after which the coroutine is started again once the backoff
delay has passed (restarting is recovery, not a retry: each incarnation is its own run); a clean
return is a ``success`` and ends supervision; cancelling the supervisor reports the running
incarnation ``cancelled`` and stops. The coroutine calls :meth:`Supervisor.beat` (found with
:func:`current_supervisor`) as it makes progress; with ``heartbeat_timeout`` declared, a loop that
stops beating goes stale in the sidecar.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace

from jobpulse.instrumentation import EventSink, Monitor, Run

__all__ = ["Backoff", "Supervisor", "crash_report", "current_supervisor", "supervise"]

# The wire truncates error messages at 4 KiB keeping the head; a traceback keeps its tail.
_KEEP_BYTES = 3800
_CURRENT: ContextVar[Supervisor | None] = ContextVar("jobpulse_supervisor", default=None)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before restart after ``failures`` crashes in a row: initial × factor^(n-1), capped.

    An incarnation that ran at least ``maximum`` seconds resets the count."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, failures - 1))


def crash_report(exc: BaseException) -> str:
    """A crash's traceback as a run's error message: its end, where the exception is named."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    raw = text.encode("utf-8")
    if len(raw) <= _KEEP_BYTES:
        return text
    return "…" + raw[-_KEEP_BYTES:].decode("utf-8", "ignore")


def current_supervisor() -> Supervisor:
    """The supervisor running the current coroutine; RuntimeError outside one."""
    found = _CURRENT.get()
    if found is None:
        raise RuntimeError("current_supervisor() is only available inside a supervised coroutine")
    return found


class Supervisor:
    """A supervised background coroutine (create it with :func:`supervise`)."""

    def __init__(
        self,
        monitor: Monitor,
        factory: Callable[[], Coroutine[Any, Any, object]],
        *,
        function: str | None,
        restart: bool,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[object]],
        monotonic: Callable[[], float],
    ) -> None:
        self.name = monitor.name
        self.failures = 0  # crashes in a row
        self.restarts = 0
        self.last_error: BaseException | None = None
        self._monitor = monitor
        self._factory = factory
        self._function = function
        self._restart = restart
        self._backoff = backoff
        self._sleep = sleep
        self._monotonic = monotonic
        self._run: Run | None = None
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._main(), name=f"jobpulse-supervise-{self.name}"
        )

    def beat(self, message: str | None = None, count: int | None = None) -> None:
        """A progress heartbeat for the running incarnation (never raises)."""
        run = self._run
        if run is not None:
            run.progress(message, count=count)

    async def stop(self) -> None:
        """Cancel the coroutine (its run is reported ``cancelled``) and wait until it ended."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _main(self) -> None:
        _CURRENT.set(self)
        while True:
            run = self._run = self._monitor.run(function=self._function)
            started = self._monotonic()
            run.begin()
            run.activate()
            try:
                await self._factory()
            except Exception as exc:
                run.fail(crash_report(exc), error_type=type(exc).__name__)
                run.deactivate()
                run.end(None)
                self.last_error = exc
            except BaseException as exc:  # cancelled (or the process is exiting)
                run.deactivate()
                run.end(exc)
                raise
            else:
                run.deactivate()
                run.end(None)
                return
            finally:
                self._run = None
            if not self._restart:
                return
            if self._monotonic() - started >= self._backoff.maximum:
                self.failures = 0
            self.failures += 1
            await self._sleep(self._backoff.delay(self.failures))
            self.restarts += 1


def supervise(
    name: str,
    coroutine_function: Callable[..., Coroutine[Any, Any, object]],
    *args: Any,
    restart: bool = True,
    backoff: Backoff | tuple[float, float] = Backoff(),
    heartbeat_timeout: str | float | None = None,
    labels: Mapping[str, str] | None = None,
    client: EventSink | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    **kwargs: Any,
) -> Supervisor:
    """Start ``coroutine_function(*args, **kwargs)`` as a supervised task (needs a running loop).

    ``backoff`` is a :class:`Backoff` or ``(initial, maximum)`` seconds. Raises
    :class:`~jobpulse.instrumentation.errors.InvalidName` or ``InvalidJobConfig`` here.
    """
    monitor = Monitor(
        name,
        heartbeat_timeout=heartbeat_timeout,
        labels=labels,
        client=client,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        clock=clock,
        monotonic=monotonic,
    )
    if isinstance(backoff, tuple):
        backoff = Backoff(*backoff)
    function = f"{coroutine_function.__module__}.{coroutine_function.__qualname__}"
    return Supervisor(
        monitor,
        lambda: coroutine_function(*args, **kwargs),
        function=function,
        restart=restart,
        backoff=backoff,
        sleep=sleep,
        monotonic=monotonic,
    )
