"""APScheduler schedulers with real jobs, reporting to a real sidecar over HTTP."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from jobpulse.instrumentation import HeartbeatClient, InMemoryClient
from jobpulse.instrumentation.apscheduler import (
    AlreadyInstrumented,
    instrument,
    progress,
    uninstrument,
)
from jobpulse.instrumentation.wire import parse_ts

from .live import LiveSidecar


def _tick() -> None:
    time.sleep(0.05)


def _explode() -> None:
    raise LookupError("no such invoice: 42")


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting for the scheduler"
        time.sleep(0.05)


def test_background_scheduler_runs_failures_and_misfires(
    live: LiveSidecar, client: HeartbeatClient
) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        _tick, CronTrigger(second="*/2", timezone="Europe/Riga"), id="Tick-Cron", max_instances=5
    )
    scheduler.add_job(_tick, "interval", seconds=1, id="tick-interval")
    scheduler.add_job(_explode, CronTrigger(second="*", timezone="UTC"), id="explode")
    # Three run times already past when the scheduler starts: two are past their 1 s grace.
    scheduler.add_job(
        _tick,
        CronTrigger(second="*/2", timezone="UTC"),
        id="late",
        next_run_time=datetime.now(UTC) - timedelta(seconds=4.5),
        misfire_grace_time=1,
        coalesce=False,
    )
    done = threading.Event()
    count = {"n": 0}

    def note(event: object) -> None:
        count["n"] += 1
        if count["n"] >= 6:
            done.set()

    instrument(scheduler, client=client)
    scheduler.add_listener(note, 1 << 12)  # EVENT_JOB_EXECUTED, after ours
    scheduler.start()
    try:
        assert done.wait(15)
        time.sleep(1.2)  # one more second: the failing job and the interval job run again
    finally:
        scheduler.shutdown(wait=True)
        uninstrument(scheduler)
    assert client.flush(10)

    tick = live.job("tick-cron")  # the job id, case-folded
    assert (tick["schedule"], tick["timezone"]) == ("*/2 * * * * *", "Europe/Riga")
    runs = [r for r in live.runs("tick-cron") if r["outcome"] == "success"]
    assert runs, live.runs("tick-cron")
    for run in runs:
        assert run["slot"] == run["scheduled_for"]  # matched through scheduled_for
        assert parse_ts(run["slot"]) % 2 == 0
        assert 0.04 <= run["duration"] < 2
    assert live.job("tick-interval")["every"] == 1.0
    assert {r["outcome"] for r in live.runs("tick-interval")} == {"success"}

    failures = live.runs("explode")
    assert failures and {r["outcome"] for r in failures} == {"failure"}
    assert failures[0]["error_type"] == "LookupError"
    assert failures[0]["error_message"] == "no such invoice: 42"
    assert live.metric('jobpulse_job_runs_total{job_name="explode",outcome="failure"}') == len(
        failures
    )

    # The run times 4.5 s or more in the past are missed; the newest past one is missed too
    # when the executor checks it more than 1 s after it was due.
    missed = live.get("/api/v1/jobs/late/missed")["missed"]
    assert len(missed) in (2, 3)
    assert {m["reason"] for m in missed} == {"misfire"}
    assert all(parse_ts(m["slot"]) % 2 == 0 for m in missed)
    ran = [r for r in live.runs("late") if r["outcome"] == "success"]
    assert ran and not {r["slot"] for r in ran} & {m["slot"] for m in missed}


def test_max_instances_is_a_missed_slot(live: LiveSidecar, client: HeartbeatClient) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    release = threading.Event()
    scheduler.add_job(release.wait, CronTrigger(second="*", timezone="UTC"), args=(10,), id="busy")
    instrument(scheduler, client=client)
    scheduler.start()
    try:
        _wait_for(lambda: live_missed(live, client, "busy"), timeout=8)
    finally:
        release.set()
        scheduler.shutdown(wait=True)
        uninstrument(scheduler)
    assert client.flush(10)
    missed = live.get("/api/v1/jobs/busy/missed")["missed"]
    assert missed and {m["reason"] for m in missed} == {"max_instances"}
    assert live.job("busy")["overlaps"] >= 1


def live_missed(live: LiveSidecar, client: HeartbeatClient, job: str) -> bool:
    client.flush(5)
    status, _, _ = live.request(f"/api/v1/jobs/{job}/missed")
    return status == 200 and bool(live.get(f"/api/v1/jobs/{job}/missed")["missed"])


async def test_asyncio_scheduler_with_coroutine_jobs(live: LiveSidecar) -> None:
    client = live.client()
    scheduler = AsyncIOScheduler(timezone="UTC")

    async def refresh() -> None:
        await asyncio.sleep(0.01)

    async def crash() -> None:
        raise TimeoutError("upstream did not answer")

    scheduler.add_job(refresh, "interval", seconds=1, id="refresh")
    scheduler.add_job(crash, CronTrigger(second="*/2", timezone="UTC"), id="crash")
    instrument(scheduler, client=client, prefix="web.")
    scheduler.start()
    try:
        await asyncio.sleep(3.2)  # the scheduler runs its jobs meanwhile
    finally:
        scheduler.shutdown(wait=False)
        uninstrument(scheduler)
    assert await asyncio.to_thread(client.flush, 10)
    client.close(5)

    refreshes = await asyncio.to_thread(live.runs, "web.refresh")
    assert len(refreshes) >= 2 and {r["outcome"] for r in refreshes} == {"success"}
    crashes = await asyncio.to_thread(live.runs, "web.crash")
    assert crashes and {(r["outcome"], r["error_type"]) for r in crashes} == {
        ("failure", "TimeoutError")
    }
    assert all(r["slot"] == r["scheduled_for"] for r in crashes)
    job = await asyncio.to_thread(live.job, "web.crash")
    assert job["schedule"] == "*/2 * * * * *"


def test_instrument_twice_is_refused_and_uninstrument_is_exact(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = InMemoryClient()
    scheduler = BackgroundScheduler(timezone="UTC")
    before = list(scheduler._listeners)
    instrument(scheduler, client=sink)
    with pytest.raises(AlreadyInstrumented, match="already instrumented"):
        instrument(scheduler, client=sink)
    uninstrument(scheduler)
    assert scheduler._listeners == before
    instrument(scheduler, client=sink)  # allowed again once uninstrumented
    with caplog.at_level(logging.WARNING, "jobpulse.instrumentation.apscheduler"):
        scheduler.add_job(_tick, "interval", seconds=5, id="bad name!")
        scheduler.add_job(_tick, CronTrigger(day="1-7", day_of_week="mon"), id="first-monday")
        scheduler.start(paused=True)
    scheduler.shutdown(wait=False)
    uninstrument(scheduler)
    assert "'bad name!' is not reported" in caplog.text
    assert "registered unscheduled" in caplog.text
    declared = {e.job: e.job_config for e in sink.events if e.type == "log"}
    assert declared == {"first-monday": None}


def test_progress_from_inside_a_long_job() -> None:
    sink = InMemoryClient()
    scheduler = BackgroundScheduler(timezone="UTC")
    finished = threading.Event()

    def reindex() -> None:
        for batch in range(1, 4):
            progress(scheduler, "reindex", f"batch {batch}", count=batch * 100)
        finished.set()

    instrument(scheduler, client=sink)
    scheduler.add_job(reindex, "date", id="reindex")  # runs at once
    scheduler.start()
    try:
        assert finished.wait(10)
        _wait_for(lambda: sink.finished("reindex"))
    finally:
        scheduler.shutdown(wait=True)
        uninstrument(scheduler)
    assert sink.types("reindex") == ["log", "start", "progress", "progress", "progress", "success"]
    assert [e.count for e in sink.filter("reindex", type="progress")] == [100, 200, 300]
    progress(scheduler, "reindex")  # no longer instrumented: nothing happens
    assert len(sink.events) == 6


def test_a_one_off_date_job_reports_its_run() -> None:
    # APScheduler removes a job with no next run time (a date trigger's) before it dispatches
    # that run's SUBMITTED event: the run is still reported, start and finish.
    sink = InMemoryClient()
    scheduler = BackgroundScheduler(timezone="UTC")
    ran = threading.Event()
    instrument(scheduler, client=sink)
    scheduler.start()
    try:
        when = datetime.now(UTC) + timedelta(seconds=0.3)
        scheduler.add_job(_explode, "date", run_date=when, id="one-off-failure")
        scheduler.add_job(ran.set, "date", run_date=when, id="one-off")
        assert ran.wait(10)
        _wait_for(lambda: sink.finished("one-off") and sink.finished("one-off-failure"))
    finally:
        scheduler.shutdown(wait=True)
        uninstrument(scheduler)
    assert sink.types("one-off") == ["log", "start", "success"]
    assert sink.types("one-off-failure") == ["log", "start", "failure"]
    assert scheduler.get_job("one-off") is None  # removed by the scheduler, as it should be


def _run_once_without_id(client: HeartbeatClient) -> str:
    """A scheduler process's life: the job added without an id, one run, shut down."""
    scheduler = BackgroundScheduler(timezone="UTC")
    job = scheduler.add_job(_tick, "interval", seconds=3600, next_run_time=datetime.now(UTC))
    ran = threading.Event()
    instrument(scheduler, client=client)
    scheduler.add_listener(lambda event: ran.set(), 1 << 12)  # EVENT_JOB_EXECUTED, after ours
    scheduler.start()
    try:
        assert ran.wait(10)
    finally:
        scheduler.shutdown(wait=True)
        uninstrument(scheduler)
    assert client.flush(10)
    return str(job.id)


def test_a_job_without_an_id_is_named_by_its_callable_across_restarts(
    live: LiveSidecar, client: HeartbeatClient
) -> None:
    first, second = _run_once_without_id(client), _run_once_without_id(client)
    assert first != second  # APScheduler made up a new id on each start
    name = f"{__name__}._tick"
    assert name == "tests.integrations.test_apscheduler_live._tick"
    names = {job["name"] for job in live.get("/api/v1/jobs")["jobs"]}
    assert names == {name}  # one job, not one per start that would page as missed
    assert live.job(name)["every"] == 3600.0
    assert [r["outcome"] for r in live.runs(name)] == ["success", "success"]


def test_a_local_function_without_an_id_gets_a_valid_name(
    live: LiveSidecar, client: HeartbeatClient
) -> None:
    def nightly() -> None:
        pass

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(nightly, "cron", hour=3)
    scheduler.add_job(nightly, "cron", hour=4, id="explicit-id")  # an id given is kept
    instrument(scheduler, client=client)
    scheduler.start(paused=True)
    scheduler.shutdown(wait=True)
    uninstrument(scheduler)
    assert client.flush(10)
    names = {job["name"] for job in live.get("/api/v1/jobs")["jobs"]}
    assert names == {
        "explicit-id",
        "tests.integrations.test_apscheduler_live.test_a_local_function_without_an_id_gets_a_"
        "valid_name.nightly",
    }
