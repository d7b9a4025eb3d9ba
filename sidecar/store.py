"""The store: a SQLAlchemy engine for SQLite (WAL, the default) or PostgreSQL, schema managed by
Alembic, and :class:`Tx`, the unit of work the domain engine reads and writes through.

All writes go through one writer (see ``writer.py``); reads use their own sessions.

Several replicas on one PostgreSQL: every transaction that changes a job first locks its row
(``SELECT ... FOR UPDATE``), so replicas ingesting for the same job serialise; the evaluator
takes due rows with ``SKIP LOCKED``; hourly rollups are created with ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine as SAEngine
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from jobpulse.instrumentation.errors import ConfigError

from .rollup import hour_of
from .tables import EventKey, Flip, Job, Rollup, Run, Slot

__all__ = ["Store", "Tx"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide where transactions begin, so BEGIN IMMEDIATE and
    # SAVEPOINT work as documented.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Store:
    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(
                f"store URL {url!r} is not a database URL: use sqlite:///path/jobpulse.db or "
                "postgresql://user@host/db"
            ) from exc
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"store URL {url!r}: backend {backend!r} is not supported; use sqlite or postgresql"
            )
        if backend == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.is_sqlite = backend == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False}
            if parsed.database in (None, "", ":memory:"):
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: SAEngine = create_engine(parsed, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    def migrate(self) -> None:
        from .migrate import upgrade

        upgrade(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._sessions.begin() as session:
            yield Tx(session, locking=not self.is_sqlite)

    def dispose(self) -> None:
        self.engine.dispose()


class Tx:
    """What the domain engine needs from a transaction, over an ORM session."""

    def __init__(self, session: Session, *, locking: bool = False) -> None:
        self.session = session
        # PostgreSQL: lock job rows (SQLite's BEGIN IMMEDIATE already serialises writers).
        self.locking = locking
        self._jobs: dict[str, Job | None] = {}
        self._rollups: dict[tuple[int, int], Rollup] = {}
        self._job_count: int | None = None

    def reset_cache(self) -> None:
        """Forget cached rows (after a savepoint rolled back)."""
        self._jobs.clear()
        self._rollups.clear()
        self._job_count = None

    # jobs
    def job(self, name: str) -> Job | None:
        if name not in self._jobs:
            query = select(Job).where(Job.name == name)
            if self.locking:
                query = query.with_for_update()
            self._jobs[name] = self.session.scalars(query).first()
        return self._jobs[name]

    def add_job(self, job: Job) -> None:
        self.session.add(job)
        self.session.flush()
        self._jobs[job.name] = job
        if self._job_count is not None:
            self._job_count += 1

    def job_count(self) -> int:
        if self._job_count is None:
            self._job_count = self.session.scalar(select(func.count(Job.id))) or 0
        return self._job_count

    def due_jobs(self, now: float, limit: int) -> list[Job]:
        query = select(Job).where(Job.next_deadline <= now).order_by(Job.next_deadline).limit(limit)
        if self.locking:
            # A job another replica is writing is skipped now and taken on the next pass.
            query = query.with_for_update(skip_locked=True)
        jobs = list(self.session.scalars(query))
        for job in jobs:
            self._jobs[job.name] = job
        return jobs

    # runs
    def run(self, job_id: int, run_id: str) -> Run | None:
        return self.session.scalars(
            select(Run).where(Run.job_id == job_id, Run.run_id == run_id)
        ).first()

    def add_run(self, run: Run) -> None:
        self.session.add(run)
        self.session.flush()

    def running_runs(self, job_id: int) -> list[Run]:
        return list(
            self.session.scalars(
                select(Run)
                .where(Run.job_id == job_id, Run.outcome == "running")
                .order_by(Run.started_at, Run.id)
            )
        )

    def latest_running(self, job_id: int) -> Run | None:
        runs = self.running_runs(job_id)
        return runs[-1] if runs else None

    # idempotency
    def claim_event(
        self, job_id: int, run_id: str, etype: str, key_ts: float, now: float, message: str | None
    ) -> bool:
        """Record the event's idempotency key; False if it was already there. One statement:
        the unique key decides, so two writers racing on the same event cannot both win."""
        dialect = postgresql if self.locking else sqlite
        result = self.session.execute(
            dialect.insert(EventKey)
            .values(
                job_id=job_id,
                run_id=run_id,
                type=etype,
                key_ts=key_ts,
                received_at=now,
                message=message if etype in ("log", "progress") else None,
            )
            .on_conflict_do_nothing()
            .returning(EventKey.id)
        )
        return result.first() is not None

    # slots
    def slot(self, job_id: int, slot: float) -> Slot | None:
        return self.session.scalars(
            select(Slot).where(Slot.job_id == job_id, Slot.slot == slot)
        ).first()

    def slots_between(self, job_id: int, lo: float, hi: float) -> dict[float, Slot]:
        rows = self.session.scalars(
            select(Slot).where(Slot.job_id == job_id, Slot.slot >= lo, Slot.slot <= hi)
        )
        return {row.slot: row for row in rows}

    def latest_slot_before(self, job_id: int, t: float) -> Slot | None:
        return self.session.scalars(
            select(Slot)
            .where(Slot.job_id == job_id, Slot.slot <= t)
            .order_by(Slot.slot.desc())
            .limit(1)
        ).first()

    def add_slot(self, slot: Slot) -> None:
        self.session.add(slot)
        self.session.flush()

    # flips, rollups
    def add_flip(self, flip: Flip) -> None:
        self.session.add(flip)

    def rollup(self, job_id: int, at: float) -> Rollup:
        key = (job_id, hour_of(at))
        roll = self._rollups.get(key)
        if roll is None:
            roll = self.session.get(Rollup, key)
            if roll is None:
                # Insert-if-absent, then load: two writers creating the same hour never collide.
                dialect = postgresql if self.locking else sqlite
                self.session.execute(
                    dialect.insert(Rollup)
                    .values(job_id=job_id, hour=key[1], **_ZERO_ROLLUP)
                    .on_conflict_do_nothing()
                )
                roll = self.session.get(Rollup, key)
                assert roll is not None
            self._rollups[key] = roll
        return roll


_ZERO_ROLLUP: dict[str, Any] = {
    "success": 0,
    "failure": 0,
    "timeout": 0,
    "cancelled": 0,
    "retry": 0,
    "missed": 0,
    "due": 0,
    "dur_count": 0,
    "dur_sum": 0.0,
}
