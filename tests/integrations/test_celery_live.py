"""A real Celery worker on a real Redis broker, reporting to a real sidecar; and a beat tick."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, beat, signals
from celery.contrib.testing.worker import start_worker
from celery.schedules import crontab

from jobpulse.instrumentation import HeartbeatClient, InMemoryClient
from jobpulse.instrumentation.celery import AlreadyInstrumented, instrument, uninstrument
from jobpulse.instrumentation.wire import parse_ts
from tests.conftest import REDIS_URL, need

from .live import LiveSidecar

PREFIX = f"jobpulse-test-{uuid.uuid4().hex[:10]}"
app = Celery("jobpulse-live", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
app.conf.update(
    task_default_queue=PREFIX,
    broker_transport_options={"global_keyprefix": f"{PREFIX}:"},
    result_backend_transport_options={"global_keyprefix": f"{PREFIX}:"},
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    timezone="Europe/Riga",
    beat_schedule={
        "Nightly-Cleanup": {"task": "jp-test.add", "schedule": crontab(), "args": (2, 3)},
        "poll-feeds": {"task": "jp-test.add", "schedule": timedelta(seconds=30), "args": (1, 1)},
    },
)


@app.task(name="jp-test.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="jp-test.boom")
def boom() -> None:
    raise KeyError("missing column 'total'")


@app.task(name="jp-test.flaky", bind=True, max_retries=3)
def flaky(self: Any) -> str:
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError("the API answered 503"), countdown=0)
    return "ok"


@app.task(name="jp-test.hopeless", bind=True, max_retries=2)
def hopeless(self: Any) -> None:
    raise self.retry(exc=ConnectionError("still down"), countdown=0)


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


@pytest.fixture(autouse=True, scope="module")
def _restore_root_logging() -> Iterator[None]:
    """Celery's test worker sets the root logger's level and leaves it: put it back."""
    level, handlers = logging.root.level, list(logging.root.handlers)
    yield
    logging.root.setLevel(level)
    logging.root.handlers[:] = handlers


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveSidecar, Any]]:
    need(_redis_up(), f"Redis at {REDIS_URL}")
    workdir: Path = tmp_path_factory.mktemp("celery")
    live = LiveSidecar(workdir).start()
    client = live.client()
    instrument(app, client=client)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield live, client
    finally:
        uninstrument(app)
        client.close(5)
        live.stop()


def _job(live: LiveSidecar, client: HeartbeatClient, name: str, runs: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        client.flush(5)
        status, _, _ = live.request(f"/api/v1/jobs/{name}")
        if status == 200:
            job = live.job(name)
            if sum(job["runs"].values()) >= runs and job["running"] == 0:
                return job
        assert time.monotonic() < deadline, f"job {name} did not report {runs} runs"
        time.sleep(0.1)


def test_outcomes_retries_and_failures(served: tuple[LiveSidecar, HeartbeatClient]) -> None:
    live, client = served
    assert add.delay(2, 40).get(timeout=10) == 42
    assert isinstance(boom.delay().get(timeout=10, propagate=False), KeyError)
    assert flaky.delay().get(timeout=15) == "ok"
    assert isinstance(hopeless.delay().get(timeout=15, propagate=False), ConnectionError)

    assert _job(live, client, "jp-test.add", 1)["runs"]["success"] >= 1
    failed = live.runs("jp-test.boom")
    assert [(r["outcome"], r["error_type"]) for r in failed] == [("failure", "KeyError")]

    flaky_job = _job(live, client, "jp-test.flaky", 3)
    assert flaky_job["runs"] == {
        "success": 1, "failure": 0, "timeout": 0, "cancelled": 0, "retry": 2,
    }  # fmt: skip
    attempts = sorted((r["attempt"], r["outcome"]) for r in live.runs("jp-test.flaky"))
    assert attempts == [(1, "retry"), (2, "retry"), (3, "success")]
    assert flaky_job["state"] == "up"  # retried attempts are not failures

    hopeless_job = _job(live, client, "jp-test.hopeless", 3)
    assert (hopeless_job["runs"]["retry"], hopeless_job["runs"]["failure"]) == (2, 1)
    final = [r for r in live.runs("jp-test.hopeless") if r["outcome"] == "failure"]
    assert [(r["attempt"], r["error_type"]) for r in final] == [(3, "ConnectionError")]
    metric = 'jobpulse_job_runs_total{job_name="jp-test.hopeless",outcome="%s"}'
    assert (live.metric(metric % "retry"), live.metric(metric % "failure")) == (2, 1)
    assert live.metric(metric.replace("hopeless", "flaky") % "success") == 1


@app.task(name="jp-test.never")
def never() -> None:
    raise AssertionError("an expired task must not run")


def test_revoked_task_is_cancelled_not_failed(
    served: tuple[LiveSidecar, HeartbeatClient],
) -> None:
    live, client = served
    # an already-expired message: the worker revokes it instead of running it
    result = never.apply_async(expires=-1)
    deadline = time.monotonic() + 10
    while result.state != "REVOKED":
        assert time.monotonic() < deadline, f"the task is {result.state}, not revoked"
        time.sleep(0.1)
    job = _job(live, client, "jp-test.never", 1)
    assert job["runs"]["cancelled"] == 1
    assert job["runs"]["failure"] == 0
    assert job["state"] != "down"
    [run] = live.runs("jp-test.never")
    assert run["outcome"] == "cancelled"


def test_beat_declares_entries_and_stamps_the_slot(
    served: tuple[LiveSidecar, HeartbeatClient],
) -> None:
    live, client = served
    service = beat.Service(app, scheduler_cls="celery.beat:Scheduler")
    signals.beat_init.send(sender=service)  # what `celery beat` sends as it starts
    scheduler = service.scheduler
    # The entry last ran two minutes ago, so the current minute's slot is due now.
    scheduler.schedule["Nightly-Cleanup"].last_run_at = app.now() - timedelta(minutes=2)
    before = time.time()
    while scheduler.tick() == 0:
        pass
    scheduler.close()

    cleanup = _job(live, client, "nightly-cleanup", 1)
    assert (cleanup["schedule"], cleanup["timezone"]) == ("* * * * *", "Europe/Riga")
    [run] = live.runs("nightly-cleanup")
    slot = parse_ts(run["scheduled_for"])
    assert slot == (before // 60) * 60 or slot == (before // 60) * 60 - 60
    assert run["outcome"] == "success"
    assert run["slot"] == run["scheduled_for"]
    assert live.job("poll-feeds")["every"] == 30.0  # declared, not yet due


def test_instrument_twice_is_refused_and_uninstrument_is_exact() -> None:
    other = Celery("jobpulse-other", set_as_current=False)
    watched = (signals.task_prerun, signals.task_postrun, signals.before_task_publish)
    before = [len(s.receivers) for s in watched]
    instrument(other, client=InMemoryClient())
    with pytest.raises(AlreadyInstrumented, match="already instrumented"):
        instrument(other, client=InMemoryClient())
    assert [len(s.receivers) for s in watched] == [n + 1 for n in before]
    uninstrument(other)
    assert [len(s.receivers) for s in watched] == before
