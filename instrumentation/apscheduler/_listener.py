"""The scheduler listener: APScheduler events in, jobpulse runs and missed slots out.

APScheduler dispatches ``EVENT_JOB_SUBMITTED`` on the scheduler's thread after it handed the job
to an executor, and the execution events on the executor's thread once the job returned, so a
quick job's ``EXECUTED`` can arrive before its ``SUBMITTED``. A run is therefore keyed by
(job id, scheduled run time) and its ``run_id`` is a UUIDv5 of that pair: whichever event comes
first starts the run, the finish closes it, and a late ``SUBMITTED`` for a finished run is
ignored. A run time already past the job's ``misfire_grace_time`` when submitted will be
reported ``MISSED`` by the executor, so no run is started for it. Every handler is guarded:
trouble is logged once per kind and never reaches the scheduler.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from apscheduler import events as ev
from opentelemetry import metrics, trace

from jobpulse.instrumentation import Event, EventSink, JobpulseError, Monitor, Run, get_client
from jobpulse.instrumentation.spec import parse_job_name

from ._triggers import UnsupportedTrigger, trigger_fields

__all__ = ["MASK", "SchedulerListener"]

log = logging.getLogger("jobpulse.instrumentation.apscheduler")
NAMESPACE: Final = uuid.UUID("8a6f2b52-3c1e-5f4e-9d7a-6b0c2e4f1a93")
MASK: Final = (
    ev.EVENT_JOB_SUBMITTED
    | ev.EVENT_JOB_EXECUTED
    | ev.EVENT_JOB_ERROR
    | ev.EVENT_JOB_MISSED
    | ev.EVENT_JOB_MAX_INSTANCES
    | ev.EVENT_JOB_ADDED
    | ev.EVENT_JOB_MODIFIED
    | ev.EVENT_JOB_REMOVED
)
_FINISHED_KEPT: Final = 1024
_HELD_KEPT: Final = 16
_REMOVED_KEPT: Final = 1024
_INVALID: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class _Job:
    monitor: Monitor
    function: str | None
    misfire_grace_time: float | None


def generated_id(job_id: str) -> bool:
    """Whether ``job_id`` is the one APScheduler 3 makes up when none is given (uuid4 hex)."""
    if len(job_id) != 32 or job_id != job_id.lower():
        return False
    try:
        return uuid.UUID(hex=job_id).version == 4
    except ValueError:
        return False


def reported_name(job: Any) -> str:
    """The name a job is reported under, before the prefix: its id, or ``module.qualname`` of
    its callable when the id was generated (a new random one on every start of the process)."""
    job_id: str = job.id
    if not generated_id(job_id):
        return job_id
    func = getattr(job, "func", None)
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(qualname, str)):
        ref = getattr(job, "func_ref", None)  # "module:qualname" for partials and the like
        if not isinstance(ref, str):
            return job_id
        module, _, qualname = ref.rpartition(":")
    name = f"{module}.{qualname}" if module else qualname
    # outer.<locals>.inner -> outer.inner, <lambda> -> lambda: readable and valid
    name = name.replace("<locals>.", "").replace("<", "").replace(">", "")
    return _INVALID.sub("-", name).strip("-._")[:128] or job_id


def run_id(job_id: str, run_time: datetime) -> str:
    """The run id of ``job_id`` scheduled at ``run_time``: the same in every event about it."""
    return str(uuid.uuid5(NAMESPACE, f"{job_id}\x00{run_time.timestamp():.6f}"))


class SchedulerListener:
    """Reports the jobs of one scheduler; registered with ``add_listener(listener, MASK)``."""

    def __init__(
        self,
        scheduler: Any,
        *,
        client: EventSink | None,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scheduler = scheduler
        self._client = client
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._prefix = prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job | None] = {}
        self._runs: dict[tuple[str, float], Run] = {}
        self._finished: OrderedDict[tuple[str, float], None] = OrderedDict()
        self._held: dict[str, list[tuple[str | None, int | None]]] = {}
        # Jobs removed from the scheduler whose runs may still be reported: APScheduler removes
        # a job with no next run time (a date trigger's) before it dispatches that run's
        # SUBMITTED event, and the run finishes later still.
        self._removed: OrderedDict[str, _Job | None] = OrderedDict()
        self._logged: set[str] = set()
        self.errors = 0

    # -- APScheduler calls this -------------------------------------------------------------
    def __call__(self, event: Any) -> None:
        try:
            code = event.code
            if code in (ev.EVENT_JOB_ADDED, ev.EVENT_JOB_MODIFIED):
                self.declare(self._scheduler.get_job(event.job_id, event.jobstore))
            elif code == ev.EVENT_JOB_REMOVED:
                self._removed_job(event.job_id)
            elif code == ev.EVENT_JOB_SUBMITTED:
                self._submitted(event.job_id, event.jobstore, event.scheduled_run_times)
            elif code in (ev.EVENT_JOB_EXECUTED, ev.EVENT_JOB_ERROR):
                self._finished_run(event.job_id, event.jobstore, event.scheduled_run_time, event)
            elif code == ev.EVENT_JOB_MISSED:
                self._missed(event.job_id, event.jobstore, [event.scheduled_run_time], "misfire")
            elif code == ev.EVENT_JOB_MAX_INSTANCES:
                times = event.scheduled_run_times
                self._missed(event.job_id, event.jobstore, times, "max_instances")
        except Exception as exc:
            self._report(f"handling event {getattr(event, 'code', '?')}", exc)

    # -- jobs -------------------------------------------------------------------------------
    def declare(self, job: Any) -> None:
        """Learn ``job`` (an APScheduler Job) and declare its schedule to the sidecar."""
        if job is None:
            return
        info = self._build(job)
        with self._lock:
            self._jobs[job.id] = info
            self._removed.pop(job.id, None)
        if info is not None:
            self._emit_event(info, "log", run_id=str(uuid.uuid4()), message="declared")

    def _build(self, job: Any) -> _Job | None:
        try:
            name = parse_job_name(self._prefix + reported_name(job))
        except JobpulseError as exc:
            log.warning("jobpulse: APScheduler job %r is not reported: %s", job.id, exc)
            return None
        what = f"APScheduler job {job.id!r}"
        try:
            fields = trigger_fields(job.trigger, what)
        except UnsupportedTrigger as exc:
            log.warning("jobpulse: %s; it is registered unscheduled", exc)
            fields = {}
        try:
            monitor = self._monitor(name, fields)
        except JobpulseError as exc:
            log.warning("jobpulse: %s: %s; it is registered unscheduled", what, exc)
            monitor = self._monitor(name, {})
        func = getattr(job, "func_ref", None)
        grace = getattr(job, "misfire_grace_time", None)  # unset while the job is pending
        return _Job(monitor, func if isinstance(func, str) else None, grace)

    def _monitor(self, name: str, fields: dict[str, Any]) -> Monitor:
        return Monitor(
            name,
            **fields,
            client=self._client,
            tracer_provider=self._tracer_provider,
            meter_provider=self._meter_provider,
            clock=self._clock,
        )

    def _removed_job(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._removed[job_id] = self._jobs.pop(job_id)
                while len(self._removed) > _REMOVED_KEPT:
                    self._removed.popitem(last=False)

    def _job(self, job_id: str, jobstore: str | None) -> _Job | None:
        with self._lock:
            if job_id in self._jobs:
                return self._jobs[job_id]
            if job_id in self._removed:
                return self._removed[job_id]
        job = self._scheduler.get_job(job_id, jobstore)
        if job is None:
            return None
        info = self._build(job)
        with self._lock:
            self._jobs.setdefault(job_id, info)
        return info

    # -- runs -------------------------------------------------------------------------------
    def _submitted(self, job_id: str, jobstore: str, run_times: list[datetime]) -> None:
        info = self._job(job_id, jobstore)
        if info is None:
            return
        now = self._clock()
        for run_time in run_times:
            key = (job_id, run_time.timestamp())
            grace = info.misfire_grace_time
            if grace is not None and now - key[1] > grace:
                continue  # the executor will report it MISSED
            with self._lock:
                if key in self._finished:
                    del self._finished[key]
                    continue
                run = self._runs[key] = self._new_run(info, job_id, run_time)
            self._begin(job_id, run)

    def _finished_run(self, job_id: str, jobstore: str, run_time: datetime, event: Any) -> None:
        info = self._job(job_id, jobstore)
        if info is None:
            return
        key = (job_id, run_time.timestamp())
        with self._lock:
            run = self._runs.pop(key, None)
            early = run is None
            if run is None:  # finished before its SUBMITTED event was dispatched
                run = self._new_run(info, job_id, run_time)
                self._finished[key] = None
                while len(self._finished) > _FINISHED_KEPT:
                    self._finished.popitem(last=False)
        if early:
            self._begin(job_id, run)
        run.end(getattr(event, "exception", None))

    def _new_run(self, info: _Job, job_id: str, run_time: datetime) -> Run:
        return info.monitor.run(
            run_id=run_id(job_id, run_time), scheduled_for=run_time, function=info.function
        )

    def progress(self, job_id: str, message: str | None, count: int | None) -> None:
        """A progress heartbeat for each running run of ``job_id``. A job calls this from its
        executor thread, possibly before the scheduler has dispatched ``SUBMITTED``: then the
        heartbeat is held and sent as the run starts."""
        with self._lock:
            runs = [run for (jid, _), run in self._runs.items() if jid == job_id]
            if not runs:
                held = self._held.setdefault(job_id, [])
                held.append((message, count))
                del held[:-_HELD_KEPT]
        for run in runs:
            run.progress(message, count=count)

    def _begin(self, job_id: str, run: Run) -> None:
        run.begin()
        with self._lock:
            held = self._held.pop(job_id, [])
        for message, count in held:
            run.progress(message, count=count)

    def _missed(self, job_id: str, jobstore: str, run_times: list[datetime], reason: str) -> None:
        info = self._job(job_id, jobstore)
        if info is None:
            return
        for run_time in run_times:
            with self._lock:
                run = self._runs.pop((job_id, run_time.timestamp()), None)
            if run is not None:  # queued in the executor past its grace time
                run.fail(
                    f"run time {run_time.isoformat()} was missed after submission",
                    error_type="Misfire",
                )
                run.end(None)
            self._emit_event(
                info,
                "missed",
                run_id=run_id(job_id, run_time),
                scheduled_for=run_time.timestamp(),
                reason=reason,
            )

    def _emit_event(self, info: _Job, type_: str, **fields: Any) -> None:
        sink = self._client if self._client is not None else get_client()
        config = info.monitor.config
        sink.emit(
            Event(
                type=type_,
                job=info.monitor.name,
                ts=self._clock(),
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                job_config=config or None,
                **fields,
            )
        )

    def _report(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            first = where not in self._logged
            self._logged.add(where)
        if first:
            log.error(
                "jobpulse: APScheduler instrumentation failed while %s (the scheduler is "
                "unaffected; further errors of this kind are counted, not logged)",
                where,
                exc_info=exc,
            )
