"""The store: a SQLAlchemy engine for SQLite (WAL, the default) or PostgreSQL, schema managed by
Alembic, and :class:`Tx`, the unit of work the domain engine reads and writes through.

Accepted events are appended to the inbox (``inbox.py``); every other write, the applier's
included, goes through one writer (``writer.py``); reads use their own sessions.

Several replicas on one PostgreSQL: every transaction that changes a job first locks its row
(``SELECT ... FOR UPDATE``), so replicas ingesting for the same job serialise; the evaluator
takes due rows with ``SKIP LOCKED``; hourly rollups are created with ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Table, bindparam, create_engine, event, func, select
from sqlalchemy import Engine as SAEngine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jobpulse.instrumentation.errors import ConfigError

from .domain.rollup import hour_of
from .domain.tables import EventKey, Flip, Job, Rollup, Run, Slot

__all__ = ["Store", "Tx"]

T = TypeVar("T")


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


_WRITE = "jobpulse_write"


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock when they begin, so two writers never deadlock upgrading a
    # read lock. Readers begin deferred: in WAL mode a reader never blocks the writer (a long
    # /metrics refresh must not hold up ingest), nor the writer it.
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _masked(url: str) -> str:
    """``url`` with the password of ``scheme://user:password@host`` replaced by ``***``."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _cause(exc: BaseException) -> str:
    """The first line of what the database driver said, or of the error itself."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0].strip() if lines else type(orig).__name__


class Store:
    """The engine and sessions of one store URL.

    The constructor opens nothing, but refuses a URL it cannot serve (a malformed URL, another
    backend, a missing driver, a SQLite file in a directory that does not exist), and
    :meth:`check` and :meth:`migrate` turn a store that cannot be opened (PostgreSQL
    unreachable, a file that is not SQLite) into one :class:`ConfigError` line naming the URL,
    password masked, and the cause.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(
                f"store URL {_masked(url)!r} is not a database URL: use "
                "sqlite:///path/jobpulse.db or postgresql://user@host/db"
            ) from exc
        shown = parsed.render_as_string(hide_password=True)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"store URL {shown!r}: backend {backend!r} is not supported; use sqlite or "
                "postgresql"
            )
        if backend == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.is_sqlite = backend == "sqlite"
        self.sqlite_path: Path | None = None
        """The SQLite database file (None for PostgreSQL and in-memory SQLite)."""
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False}
            if parsed.database in (None, "", ":memory:"):
                from sqlalchemy.pool import StaticPool

                kwargs["poolclass"] = StaticPool
            elif not parsed.database.startswith("file:"):  # URI filenames are SQLite's to check
                self.sqlite_path = Path(parsed.database)
                folder = self.sqlite_path.parent
                if not folder.is_dir():
                    raise ConfigError(
                        f"store {shown}: the directory {str(folder)!r} does not exist; create it "
                        "or point the store at an existing one"
                    )
                if self.sqlite_path.is_dir():
                    raise ConfigError(
                        f"store {shown}: {str(self.sqlite_path)!r} is a directory, not a "
                        "database file"
                    )
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: SAEngine = create_engine(parsed, **kwargs)
        except ImportError as exc:
            raise ConfigError(
                f"store {shown}: the database driver is not installed ({exc.name or exc}); "
                "install jobpulse[postgres] for PostgreSQL"
            ) from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        # The same pool; its connections begin with the write lock on SQLite.
        self.write_engine = self.engine.execution_options(**{_WRITE: True})
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self._write_sessions = sessionmaker(
            self.write_engine, expire_on_commit=False, autoflush=True
        )
        # SQLite has one writer at a time: the threads that write (the inbox's appender, the
        # writer) take turns in-process rather than through SQLite's sleeping busy handler.
        self.write_lock: threading.RLock | contextlib.nullcontext[None] = (
            threading.RLock() if self.is_sqlite else contextlib.nullcontext()
        )

    @property
    def display_url(self) -> str:
        """The store URL with its password masked, for messages and logs."""
        return self.url.render_as_string(hide_password=True)

    @contextmanager
    def _opening(self) -> Iterator[None]:
        from alembic.util import CommandError

        try:
            yield
        except (SQLAlchemyError, CommandError, OSError) as exc:
            raise ConfigError(f"store {self.display_url}: {_cause(exc)}") from exc

    def check(self) -> None:
        """Open a connection once; :class:`ConfigError` naming the store and the cause when
        that fails. On SQLite this creates the database file when there is none."""
        with self._opening(), self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def migrate(self) -> None:
        """Bring the schema up to date; :class:`ConfigError` when the store cannot be opened."""
        from .migrate import upgrade

        with self._opening():
            upgrade(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.write_lock, self._write_sessions.begin() as session:
            yield Tx(session, locking=not self.is_sqlite)

    @contextmanager
    def append_transaction(self) -> Iterator[Connection]:
        """A Core write transaction (the inbox's appends: no ORM on the hot path)."""
        with self.write_lock, self.write_engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


_JOB_BY_NAME = select(Job).where(Job.name == bindparam("name"))
_JOB_BY_NAME_LOCKED = _JOB_BY_NAME.with_for_update()
_RUN_BY_ID = select(Run).where(Run.job_id == bindparam("job_id"), Run.run_id == bindparam("run_id"))
_RUNNING = select(Run).where(Run.job_id == bindparam("job_id"), Run.outcome == "running")
_SLOT_AT = select(Slot).where(Slot.job_id == bindparam("job_id"), Slot.slot == bindparam("slot"))
_SLOTS_BETWEEN = select(Slot).where(
    Slot.job_id == bindparam("job_id"), Slot.slot >= bindparam("lo"), Slot.slot <= bindparam("hi")
)
_LATEST_SLOT = (
    select(Slot)
    .where(Slot.job_id == bindparam("job_id"), Slot.slot <= bindparam("t"))
    .order_by(Slot.slot.desc())
    .limit(1)
)
_ROLLUP = select(Rollup).where(
    Rollup.job_id == bindparam("job_id"), Rollup.hour == bindparam("hour")
)
_UNFLUSHED = 1 << 62  # sorts runs not yet given an id after every stored one, in insertion order
_CHUNK = 500  # ids per IN (...) list


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class Tx:
    """What the domain engine needs from a transaction, over an ORM session.

    The engine's reads see its own unwritten changes without flushing the session before each
    query: runs and slots added in this transaction are indexed here and merged into what the
    store returns, and the session is flushed once, at the end of the writer's batch (or of a
    request's savepoint when a batch is applied request by request). The ``load_*`` methods
    read what a batch will need in bulk beforehand. (Slots and runs are never deleted within an
    engine transaction; whatever deletes rows flushes and then calls :meth:`reset_cache`.)
    """

    def __init__(self, session: Session, *, locking: bool = False) -> None:
        self.session = session
        # PostgreSQL: lock job rows (SQLite's BEGIN IMMEDIATE already serialises writers).
        self.locking = locking
        self._jobs: dict[str, Job | None] = {}
        self._rollups: dict[tuple[int, int], Rollup] = {}
        self._job_count: int | None = None
        self._runs: dict[tuple[int, str], Run | None] = {}
        self._running: dict[int, list[Run]] = {}  # running when loaded or added; filtered on read
        self._slots: dict[tuple[int, float], Slot | None] = {}
        self._added_slots: dict[int, dict[float, Slot]] = {}
        self._pending_order: dict[Run, int] = {}
        # Slots of the store loaded in bulk: per job, the range [lo, hi] they cover in full.
        self._slot_cover: dict[int, tuple[float, float]] = {}
        self._stored_slots: dict[int, dict[float, Slot]] = {}
        # Idempotency keys read ahead: True if stored or claimed here, False if not stored.
        self._keys: dict[tuple[int, str, str, float], bool] = {}

    def reset_cache(self) -> None:
        """Forget cached rows: after a savepoint rolled back (which discards unwritten rows), or
        after rows were deleted (flush first: reads that follow see only the store)."""
        self._jobs.clear()
        self._rollups.clear()
        self._job_count = None
        self._runs.clear()
        self._running.clear()
        self._slots.clear()
        self._added_slots.clear()
        self._pending_order.clear()
        self._slot_cover.clear()
        self._stored_slots.clear()
        self._keys.clear()

    # jobs
    def job(self, name: str) -> Job | None:
        if name not in self._jobs:
            query = _JOB_BY_NAME_LOCKED if self.locking else _JOB_BY_NAME
            with self.session.no_autoflush:
                self._jobs[name] = self.session.scalars(query, {"name": name}).first()
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
        key = (job_id, run_id)
        if key not in self._runs:
            with self.session.no_autoflush:
                params = {"job_id": job_id, "run_id": run_id}
                self._runs[key] = self.session.scalars(_RUN_BY_ID, params).first()
        return self._runs[key]

    def add_run(self, run: Run) -> None:
        self.session.add(run)
        self._pending_order[run] = _UNFLUSHED + len(self._pending_order)
        self._runs[(run.job_id, run.run_id)] = run
        if run.outcome == "running":
            self._running_candidates(run.job_id).append(run)

    def _running_candidates(self, job_id: int) -> list[Run]:
        runs = self._running.get(job_id)
        if runs is None:
            with self.session.no_autoflush:
                runs = list(self.session.scalars(_RUNNING, {"job_id": job_id}))
            for run in runs:
                self._runs[(job_id, run.run_id)] = run
            self._running[job_id] = runs
        return runs

    def running_runs(self, job_id: int) -> list[Run]:
        """The job's running runs, oldest start first (ties in the order they were added)."""
        runs = [run for run in self._running_candidates(job_id) if run.outcome == "running"]
        if len(runs) > 1:
            runs.sort(key=self._run_order)
        return runs

    def _run_order(self, run: Run) -> tuple[float, int]:
        return (run.started_at, run.id if run.id is not None else self._pending_order[run])

    def latest_running(self, job_id: int) -> Run | None:
        runs = self.running_runs(job_id)
        return runs[-1] if runs else None

    # idempotency
    def claim_event(
        self, job_id: int, run_id: str, etype: str, key_ts: float, now: float, message: str | None
    ) -> bool:
        """Record the event's idempotency key; False if it was already there.

        A key read ahead as not stored is added to the session and written with the batch;
        otherwise one statement claims it. Either way the unique key decides, so two writers
        racing on the same event cannot both win (the loser's flush fails and its batch is
        applied again, when it finds the key)."""
        key = (job_id, run_id, etype, key_ts)
        known = self._keys.get(key)
        if known is not None:
            if known:
                return False
            self._keys[key] = True
            self.session.add(
                EventKey(
                    job_id=job_id,
                    run_id=run_id,
                    type=etype,
                    key_ts=key_ts,
                    received_at=now,
                    message=message if etype in ("log", "progress") else None,
                )
            )
            return True
        statement = _CLAIM_PG if self.locking else _CLAIM_SQLITE
        params = {
            "job_id": job_id,
            "run_id": run_id,
            "type": etype,
            "key_ts": key_ts,
            "received_at": now,
            "message": message if etype in ("log", "progress") else None,
        }
        claimed = self.session.connection().execute(statement, params).first() is not None
        self._keys[key] = True
        return claimed

    def load_event_keys(self, keys: Iterable[tuple[int, str, str, float]]) -> None:
        wanted = sorted(set(keys) - self._keys.keys())
        for chunk in _chunks(wanted):
            query = select(EventKey.job_id, EventKey.run_id, EventKey.type, EventKey.key_ts).where(
                EventKey.job_id.in_({key[0] for key in chunk}),
                EventKey.run_id.in_({key[1] for key in chunk}),
            )
            with self.session.no_autoflush:
                stored = {tuple(row) for row in self.session.execute(query)}
            for key in chunk:
                self._keys[key] = key in stored

    # slots
    def _covered(self, job_id: int, lo: float, hi: float) -> dict[float, Slot] | None:
        cover = self._slot_cover.get(job_id)
        if cover is None or not cover[0] <= lo <= hi <= cover[1]:
            return None
        return self._stored_slots[job_id]

    def slot(self, job_id: int, slot: float) -> Slot | None:
        key = (job_id, slot)
        if key not in self._slots:
            stored = self._covered(job_id, slot, slot)
            if stored is not None:
                return stored.get(slot)
            with self.session.no_autoflush:
                params = {"job_id": job_id, "slot": slot}
                self._slots[key] = self.session.scalars(_SLOT_AT, params).first()
        return self._slots[key]

    def slots_between(self, job_id: int, lo: float, hi: float) -> dict[float, Slot]:
        stored = self._covered(job_id, lo, hi)
        if stored is not None:
            found = {at: row for at, row in stored.items() if lo <= at <= hi}
        else:
            with self.session.no_autoflush:
                params = {"job_id": job_id, "lo": lo, "hi": hi}
                found = {row.slot: row for row in self.session.scalars(_SLOTS_BETWEEN, params)}
        for at, row in self._added_slots.get(job_id, {}).items():
            if lo <= at <= hi:
                found[at] = row
        return found

    def latest_slot_before(self, job_id: int, t: float) -> Slot | None:
        with self.session.no_autoflush:
            row = self.session.scalars(_LATEST_SLOT, {"job_id": job_id, "t": t}).first()
        added = [s for at, s in self._added_slots.get(job_id, {}).items() if at <= t]
        if added:
            newest = max(added, key=lambda s: s.slot)
            if row is None or newest.slot > row.slot:
                return newest
        return row

    def add_slot(self, slot: Slot) -> None:
        self.session.add(slot)
        self._slots[(slot.job_id, slot.slot)] = slot
        self._added_slots.setdefault(slot.job_id, {})[slot.slot] = slot

    # bulk loads: what a batch of events will read, in a few statements instead of several
    # per event. They only fill the caches above; every read works without them.
    def load_jobs(self, names: Iterable[str]) -> None:
        wanted = sorted(set(names) - self._jobs.keys())
        for chunk in _chunks(wanted):
            # Sorted by name: PostgreSQL replicas lock a batch's jobs in one order.
            query = select(Job).where(Job.name.in_(chunk)).order_by(Job.name)
            if self.locking:
                query = query.with_for_update()
            with self.session.no_autoflush:
                found = {job.name: job for job in self.session.scalars(query)}
            for name in chunk:
                self._jobs[name] = found.get(name)

    def load_runs(self, keys: Iterable[tuple[int, str]]) -> None:
        """Runs by (job id, run id), and every running run of those jobs."""
        keys = set(keys)
        job_ids = {job_id for job_id, _ in keys}
        with self.session.no_autoflush:
            for chunk in _chunks(sorted(job_ids - self._running.keys())):
                running: dict[int, list[Run]] = {job_id: [] for job_id in chunk}
                query = select(Run).where(Run.job_id.in_(chunk), Run.outcome == "running")
                for run in self.session.scalars(query):
                    running[run.job_id].append(run)
                    self._runs[(run.job_id, run.run_id)] = run
                self._running.update(running)
            for part in _chunks(sorted(keys - self._runs.keys())):
                query = select(Run).where(
                    Run.job_id.in_({job_id for job_id, _ in part}),
                    Run.run_id.in_({run_id for _, run_id in part}),
                )
                found = {(run.job_id, run.run_id): run for run in self.session.scalars(query)}
                for key in part:
                    self._runs[key] = found.get(key)

    def load_slots(self, windows: dict[int, tuple[float, float]]) -> None:
        """Every stored slot of each job within its window (one statement for all of them)."""
        todo = {
            job_id: window
            for job_id, window in windows.items()
            if self._covered(job_id, *window) is None
        }
        if not todo:
            return
        lo = min(window[0] for window in todo.values())
        hi = max(window[1] for window in todo.values())
        for chunk in _chunks(sorted(todo)):
            stored: dict[int, dict[float, Slot]] = {job_id: {} for job_id in chunk}
            query = select(Slot).where(Slot.job_id.in_(chunk), Slot.slot >= lo, Slot.slot <= hi)
            with self.session.no_autoflush:
                for row in self.session.scalars(query):
                    stored[row.job_id][row.slot] = row
            for job_id in chunk:
                # Slots this transaction added are in _added_slots; reads merge them in.
                self._stored_slots[job_id] = stored[job_id]
                self._slot_cover[job_id] = (lo, hi)

    def load_rollups(self, keys: Iterable[tuple[int, float]]) -> None:
        wanted = sorted({(job_id, hour_of(at)) for job_id, at in keys} - self._rollups.keys())
        for chunk in _chunks(wanted):
            query = select(Rollup).where(
                Rollup.job_id.in_({job_id for job_id, _ in chunk}),
                Rollup.hour.in_({hour for _, hour in chunk}),
            )
            with self.session.no_autoflush:
                for roll in self.session.scalars(query):
                    self._rollups.setdefault((roll.job_id, roll.hour), roll)

    # flips, rollups
    def add_flip(self, flip: Flip) -> None:
        self.session.add(flip)

    def rollup(self, job_id: int, at: float) -> Rollup:
        key = (job_id, hour_of(at))
        roll = self._rollups.get(key)
        if roll is None:
            params = {"job_id": job_id, "hour": key[1]}
            with self.session.no_autoflush:
                roll = self.session.scalars(_ROLLUP, params).first()
                if roll is None:
                    # Insert-if-absent, then load: two writers creating the same hour never
                    # collide.
                    statement = _NEW_ROLLUP_PG if self.locking else _NEW_ROLLUP_SQLITE
                    self.session.connection().execute(statement, params)
                    roll = self.session.scalars(_ROLLUP, params).first()
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

_EVENT_KEYS = cast(Table, EventKey.__table__)
_ROLLUPS = cast(Table, Rollup.__table__)
_CLAIM_VALUES: dict[str, Any] = {
    name: bindparam(name)
    for name in ("job_id", "run_id", "type", "key_ts", "received_at", "message")
}
_CLAIM_SQLITE = (
    sqlite.insert(_EVENT_KEYS)
    .values(_CLAIM_VALUES)
    .on_conflict_do_nothing()
    .returning(_EVENT_KEYS.c.id)
)
_CLAIM_PG = (
    postgresql.insert(_EVENT_KEYS)
    .values(_CLAIM_VALUES)
    .on_conflict_do_nothing()
    .returning(_EVENT_KEYS.c.id)
)
_ROLLUP_VALUES = {"job_id": bindparam("job_id"), "hour": bindparam("hour"), **_ZERO_ROLLUP}
_NEW_ROLLUP_SQLITE = sqlite.insert(_ROLLUPS).values(_ROLLUP_VALUES).on_conflict_do_nothing()
_NEW_ROLLUP_PG = postgresql.insert(_ROLLUPS).values(_ROLLUP_VALUES).on_conflict_do_nothing()
