"""Several replicas on one PostgreSQL: leader election, and races between replicas that must
neither lose nor double-count anything (DESIGN.md "Store, durability and scale")."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select

from jobpulse.instrumentation.wire import format_ts, parse_event
from jobpulse.sidecar.domain.tables import Job, Rollup, Run, Slot
from jobpulse.sidecar.store.database import Store
from jobpulse.sidecar.store.leader import Leadership
from tests.sidecar.harness import T0, Harness

MINUTELY = 'jobs:\n  - name: minutely\n    schedule: "* * * * *"\n    grace: 5s\n'


@pytest.fixture
def pair(pg_url: str) -> Iterator[tuple[Harness, Harness]]:
    a = Harness(pg_url, MINUTELY, start=T0)
    b = Harness(pg_url, MINUTELY, start=T0)
    yield a, b
    a.close()
    b.close()


def wait_for(cond: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not cond():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


def test_exactly_one_leader_and_release_hands_over(pg_url: str) -> None:
    a, b = Leadership(Store(pg_url)), Leadership(Store(pg_url))
    assert a.check() is True
    assert b.check() is False
    assert a.check() is True
    a.release()
    assert b.check() is True
    assert a.check() is False
    b.release()


def test_sqlite_is_always_leader(tmp_path: Any) -> None:
    lead = Leadership(Store(f"sqlite:///{tmp_path}/s.db"))
    assert lead.is_leader and lead.check()
    lead.release()
    assert lead.check()


def test_dead_leader_connection_hands_over_and_the_old_leader_steps_down(pg_url: str) -> None:
    a, b = Leadership(Store(pg_url)), Leadership(Store(pg_url))
    assert a.check()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'jobpulse-leader' AND pid <> pg_backend_pid() "
            "AND datname = current_database() AND query LIKE '%pg_try_advisory_lock%'"
        )
    took = wait_for(b.check, timeout=3)
    assert took < 2.5
    time.sleep(1.1)  # past the leader's re-check interval
    assert a.check() is False
    b.release()


def test_hung_leader_loses_the_lock_after_its_lease(pg_url: str) -> None:
    a = Leadership(Store(pg_url), lease=1.0)
    b = Leadership(Store(pg_url))
    assert a.check()
    assert not b.check()
    # `a` stops checking (a hung process): the server ends its idle session after the lease.
    took = wait_for(b.check, timeout=6)
    assert 0.5 < took < 4
    assert a.check() is False
    b.release()


def test_two_evaluators_never_double_count_a_slot(pair: tuple[Harness, Harness]) -> None:
    a, b = pair
    stop = T0 + 30 * 60
    instants = [T0 + 7.5 * i for i in range(int((stop - T0) / 7.5) + 1)]

    def evaluate(h: Harness) -> None:
        for t in instants:
            h.sidecar.tick_sync(t)

    with ThreadPoolExecutor(2) as pool:
        for fut in [pool.submit(evaluate, a), pool.submit(evaluate, b)]:
            fut.result()
    slots = a.slots("minutely")
    assert [s for s, _, _ in slots] == [T0 + 60 * i for i in range(30)]
    assert all(status == "missed" for _, status, _ in slots)
    job = a.job("minutely")
    assert job.missed_total == 30
    with a.sidecar.store.session() as s:
        assert s.scalar(select(func.sum(Rollup.missed))) == 30
        assert s.scalar(select(func.sum(Rollup.due))) == 30


def _send(h: Harness, type_: str, job: str, run_id: str, ts: float) -> Any:
    raw = {"type": type_, "job": job, "run_id": run_id, "ts": format_ts(ts)}
    event, _ = parse_event(raw)
    return h.sidecar.ingest_sync([event], now=ts)


def test_concurrent_ingest_for_the_same_jobs_on_two_replicas(
    pair: tuple[Harness, Harness],
) -> None:
    a, b = pair
    jobs = ["minutely", "auto-a", "auto-b", "auto-c"]  # three are registered by the race
    errors: list[BaseException] = []
    per_thread = 40

    def worker(h: Harness, seed: int) -> None:
        try:
            for i in range(per_thread):
                job = jobs[(i + seed) % len(jobs)]
                rid = uuid.uuid4().hex
                start = T0 + i * 15 + seed
                r1 = _send(h, "start", job, rid, start)
                r2 = _send(h, "success", job, rid, start + 1)
                assert r1.accepted == 1 and r2.accepted == 1, (r1, r2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(h, n)) for n, h in enumerate([a, b] * 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = per_thread * len(threads)
    with a.sidecar.store.session() as s:
        assert s.scalar(select(func.count(Job.id))) == len(jobs)
        assert s.scalar(select(func.count(Run.id)).where(Run.outcome == "success")) == total
        assert s.scalar(select(func.sum(Job.runs_success))) == total
        assert s.scalar(select(func.sum(Rollup.success))) == total
        slots = s.execute(select(Slot.job_id, Slot.slot)).all()
        assert len(slots) == len(set(slots))
