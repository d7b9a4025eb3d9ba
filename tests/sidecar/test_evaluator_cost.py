"""The evaluator reads only due jobs: a tick's work does not grow with jobs that are not due.

Measured deterministically (SQL statements issued, rows returned, the query plan), not by
timing; bench/ reports the timings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text

from bench.population import insert_jobs, job_rows
from jobpulse.sidecar.domain.tables import Job
from tests.sidecar.harness import T0, Harness

DUE = """
jobs:
""" + "".join(f'  - name: due-{i}\n    schedule: "*/5 * * * *"\n' for i in range(10))


def _idle_jobs(h: Harness, count: int) -> None:
    """``count`` jobs whose next deadline is a month away, written straight into the store."""
    rows = job_rows(count, T0, history=False)
    insert_jobs(h.sidecar.store.engine, rows, T0, rollups=False)


def _tick_cost(tmp_path: Any, idle: int) -> tuple[int, int, int]:
    h = Harness(f"sqlite:///{tmp_path}/cost-{idle}.db", DUE, start=T0 - 10)
    try:
        _idle_jobs(h, idle)
        statements: list[str] = []
        rows = 0

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(h.sidecar.store.engine, "before_cursor_execute", count)
        h.clock.set(T0 + 31)  # every due-* job's first slot has just passed its grace
        evaluated = h.sidecar.tick_sync()
        event.remove(h.sidecar.store.engine, "before_cursor_execute", count)
        rows = sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))
        assert len(h.missed("due-0")) == 1
        return evaluated, len(statements), rows
    finally:
        h.close()


def test_tick_cost_does_not_grow_with_jobs_that_are_not_due(tmp_path: Any) -> None:
    small = _tick_cost(tmp_path, 1_000)
    large = _tick_cost(tmp_path, 100_000)
    assert small[0] == large[0] == 10  # only the due jobs were evaluated
    assert small == large  # the same statements, whatever the number of idle jobs


def test_due_jobs_are_found_through_the_index(tmp_path: Any) -> None:
    h = Harness(f"sqlite:///{tmp_path}/plan.db", DUE, start=T0)
    try:
        with h.sidecar.store.engine.connect() as conn:
            plan = conn.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE next_deadline <= :now "
                    "ORDER BY next_deadline LIMIT 500"
                ),
                {"now": T0},
            ).fetchall()
        detail = " ".join(str(row[-1]) for row in plan)
        assert "ix_jobs_next_deadline" in detail
        assert "SCAN jobs" not in detail.replace("USING INDEX", "")
    finally:
        h.close()


def _list_statements(tmp_path: Any, count: int) -> int:
    cfg = "jobs:\n" + "".join(f"  - name: j{i}\n    every: 10m\n" for i in range(count))
    h = Harness(f"sqlite:///{tmp_path}/list-{count}.db", cfg, start=T0)
    try:
        for i in range(count):
            h.run(f"j{i}", T0 + 1, 1)
        statements: list[str] = []

        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        from sqlalchemy import select

        from jobpulse.sidecar.http.views import full_job_views

        with h.sidecar.store.session() as session:
            jobs = list(session.scalars(select(Job)))
            event.listen(h.sidecar.store.engine, "before_cursor_execute", note)
            views = full_job_views(h.sidecar, session, jobs)
            event.remove(h.sidecar.store.engine, "before_cursor_execute", note)
        assert len(views) == count
        assert all(v["success_ratio_24h"] == 1.0 for v in views)
        return len(statements)
    finally:
        h.close()


def test_listing_jobs_costs_the_same_queries_for_ten_or_two_hundred(tmp_path: Any) -> None:
    assert _list_statements(tmp_path, 10) == _list_statements(tmp_path, 200)
