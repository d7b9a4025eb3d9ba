"""Query plans: every lookup by pairs probes an index, none builds one or reads the table.

SQLite's planner, with no statistics, answers a VALUES list of 512 pairs joined to a table by
building an automatic index over the whole table for each statement: a duplicate check that
grows with every stored event. The pairs statements stop at ``MAX_PAIRS``; these plans must
hold up to it, and no statement that ingest, the applier or the evaluator runs may need an
automatic index at all. PostgreSQL's planner hashed the whole table for every statement while
it thought the table small (a fresh store, never analyzed): there each lookup is a LATERAL
probe, whatever the statistics say.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from jobpulse.instrumentation.wire import Event
from jobpulse.sidecar.store import appender, readahead
from jobpulse.sidecar.store.pairs import MAX_PAIRS, pairs_args, pairs_sql
from tests.sidecar.harness import T0, Harness

TEMPLATES = {
    "inbox keys": appender._KEYS_STORED[0],
    "stored keys": appender._KEYS_STORED[1],
    "runs": readahead._RUN_IDS,
    "event keys": readahead._EVENT_KEYS,
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_size_up_to_the_cap_probes_the_index(tmp_path: Path, name: str) -> None:
    h = Harness(f"sqlite:///{tmp_path}/p.db", "", start=T0)
    try:
        sizes = [2**n for n in range(3, MAX_PAIRS.bit_length()) if 2**n <= MAX_PAIRS]
        assert sizes[-1] == MAX_PAIRS
        with h.sidecar.store.engine.connect() as conn:
            for size in sizes:
                pairs = [("job", f"run-{i}") for i in range(size)]
                statement = pairs_sql(TEMPLATES[name], size)
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", pairs_args(pairs))
                plan = [row[-1] for row in rows]
                assert not [step for step in plan if "AUTOMATIC" in step], (size, plan)
                # The table itself: one search of its unique index per pair.
                probes = [step for step in plan if step.startswith("SEARCH") and "INDEX" in step]
                assert probes, (size, plan)
    finally:
        h.close()


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_postgresql_probes_the_index_per_pair_whatever_its_statistics(
    pg_url: str, name: str
) -> None:
    h = Harness(pg_url, "", start=T0)  # a fresh store: never analyzed
    query = TEMPLATES[name]
    by_id = query.names.startswith("job_id")
    pairs = [(1 if by_id else "job", f"run-{i}") for i in range(100)]
    try:
        with h.sidecar.store.engine.connect() as conn:
            types = ("integer", "text") if by_id else ("text", "text")
            statement = pairs_sql(query, len(pairs), postgresql=True, types=types)
            args = pairs_args(pairs, postgresql=True)
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {statement}", args))
    finally:
        h.close()
    assert "Seq Scan" not in plan and "Hash" not in plan, plan
    for table, alias, _ in query.lookups:
        assert re.search(rf"Index (Only )?Scan using \w+ on {table} {alias}\b", plan), plan


def test_more_pairs_than_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match=f"1 to {MAX_PAIRS}"):
        pairs_sql(readahead._RUN_IDS, MAX_PAIRS + 1)


def test_no_statement_of_ingest_apply_or_tick_builds_an_automatic_index(tmp_path: Path) -> None:
    config = (
        "jobs:\n"
        + "".join(
            f'  - name: cron-{i}\n    schedule: "*/5 * * * *"\n    max_runtime: 2m\n'
            for i in range(30)
        )
        + "".join(
            f"  - name: every-{i}\n    every: 5m\n    heartbeat_timeout: 1m\n" for i in range(5)
        )
        + "".join(f"  - name: after-{i}\n    after: cron-{i}\n" for i in range(5))
    )
    h = Harness(f"sqlite:///{tmp_path}/p.db", config, start=T0)
    statements: dict[str, Any] = {}

    def seen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "UPDATE", "DELETE")):
            statements.setdefault(sql, params[0] if many and params else params)

    try:
        for engine in {h.sidecar.store.engine, h.sidecar.store.write_engine}:
            event.listen(engine, "before_cursor_execute", seen)
        for minute in range(0, 30, 5):
            t = T0 + 60 * minute + 1
            h.clock.set(t)
            # More (job, run) pairs in one group commit than one pairs statement takes.
            events = [
                Event(type="start", job=f"cron-{i}", run_id=f"m{minute}-{i}", ts=t)
                for i in range(30)
            ]
            events += [
                Event(
                    type="success" if i % 7 else "failure",
                    job=f"cron-{i % 30}",
                    run_id=f"m{minute}-{i}",
                    ts=t,
                    duration=0.5,
                )
                for i in range(300)
            ]
            events += [
                Event(type="progress", job=f"every-{i}", run_id=f"e{minute}", ts=t)
                for i in range(5)
            ]
            h.sidecar.appender.submit(events, at=t).result(timeout=30)
            h.move(t + 200)
        assert len(statements) > 20
        with sqlite3.connect(tmp_path / "p.db") as conn:
            automatic = {
                sql: steps
                for sql, params in statements.items()
                if (steps := [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)])
                and any("AUTOMATIC" in step for step in steps)
            }
        assert not automatic
    finally:
        h.close()
