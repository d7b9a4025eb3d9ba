"""The store: a SQLAlchemy engine for SQLite (WAL, the default) or PostgreSQL, schema managed by
Alembic (``migrate.py``), and transactions (:class:`~jobpulse.sidecar.store.tx.Tx`, the unit of
work the domain engine reads and writes through).

Accepted events are appended to the inbox (``inbox.py``); every other write, the applier's
included, goes through one writer (``writer.py``); reads use their own sessions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, create_engine, event
from sqlalchemy import Engine as SAEngine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jobpulse.instrumentation.errors import ConfigError

from ..domain.tables import FlipRecord, Job
from .migrate import upgrade
from .tx import BEGIN_IMMEDIATE, LAZY_BEGIN, Tx

__all__ = ["LOCK_SUFFIXES", "SERVING_SUFFIX", "Store"]

log = logging.getLogger("jobpulse.sidecar.store")

try:
    import fcntl
except ImportError:  # not POSIX: no claim on the file, and the writer begins at once
    fcntl = None  # type: ignore[assignment]

# Beside a SQLite store file (like its -wal and -shm): locked by the sidecar serving it, and
# holding that process's id.
SERVING_SUFFIX = "-serving"
# Beside a SQLite store file that two processes of one sidecar write (``apply_process``): the
# write lock and the state lock (see :class:`FileLock` and :meth:`Store.transaction`).
WRITING_SUFFIX, STATE_SUFFIX = "-writing", "-state"
LOCK_SUFFIXES = (WRITING_SUFFIX, STATE_SUFFIX)


class FileLock:
    """A lock that threads of one process and the processes of one sidecar take in turns:
    a re-entrant thread lock, then the kernel's lock on a file (``flock``: it goes with the
    process however that ends, and a waiter wakes as soon as it is released, where SQLite's
    busy handler would sleep). Re-entrant in the thread that holds it."""

    def __init__(self, path: str) -> None:
        self._thread_lock = threading.RLock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._depth = 0

    def acquire(self) -> bool:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def close(self) -> None:
        os.close(self._fd)


def _bind_null_directly() -> None:
    """Bind Python's None as NULL without the driver's adaptation protocol. The sqlite3 module
    binds int, float and str as they are, but None (every column a row leaves empty) goes
    through ``__adapt__``/``__conform__`` lookups that fail, each formatting an AttributeError:
    4% of the applier's instructions, for a new run's dozen empty columns. An adapter
    registered for it is found first, in a dict, and returns it as it is. (Process-wide, as
    every sqlite3 adapter is; it changes nothing but the cost: None is bound as NULL either
    way.)"""
    as_it_is = cast("Callable[[None], None]", {}.get)  # C, so no Python frame per None
    sqlite3.register_adapter(type(None), as_it_is)


# Pages in the write-ahead log past which a commit checkpoints it into the database file:
# SQLite's default, and a fallback for a server whose applier process checkpoints instead
# (see Store's ``checkpoints``), used only should that process stop for a while.
CHECKPOINT_PAGES = 1000
FALLBACK_CHECKPOINT_PAGES = 16384  # 64 MB of 4 KB pages


def _sqlite_pragmas(checkpoint_pages: int, dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide where transactions begin, so BEGIN IMMEDIATE and
    # SAVEPOINT work as documented.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute(f"PRAGMA wal_autocheckpoint={checkpoint_pages}")
    cur.close()


_WRITE = "jobpulse_write"
_LAZY = "lazy"
# Statements that leave a lazy transaction unbegun (everything else begins it): a SELECT, a
# PRAGMA, or a WITH query that does not write (the pairs lookups, store/pairs.py).
_READS = re.compile(
    r"\s*(SELECT|PRAGMA)\b|\s*WITH\b(?!.*\b(INSERT|UPDATE|DELETE|REPLACE)\b)",
    re.IGNORECASE | re.DOTALL,
)


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock when they begin, so two writers never deadlock upgrading a
    # read lock. Readers begin deferred: in WAL mode a reader never blocks the writer (a long
    # /metrics refresh must not hold up ingest), nor the writer it. The writer's transactions
    # begin lazily: BEGIN IMMEDIATE before their first write (see Store.transaction).
    write = conn.get_execution_options().get(_WRITE, False)
    if write == _LAZY:
        conn.info[LAZY_BEGIN] = True
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _sqlite_end(conn: Any) -> None:
    conn.info.pop(LAZY_BEGIN, None)  # a lazy transaction that never wrote: nothing to end


def _unbegun_on_checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
    # A lazy transaction ends with a commit or a rollback, which clear the flag. Should one
    # ever end otherwise, the next borrower of the connection must not inherit it: its first
    # write would take the write lock for a transaction that is not its own.
    if record.info.pop(LAZY_BEGIN, None):
        log.error("a pooled SQLite connection came back in a lazy transaction; cleared")


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

    ``shared``: a SQLite file that two processes of one sidecar write, the server and its
    applier (``apply_process``); without it the store's locks are its process's own.
    ``checkpoints``: this process's commits checkpoint SQLite's write-ahead log into the
    database file once it holds ``CHECKPOINT_PAGES``. A server beside its applier process
    leaves that to the applier (only past ``FALLBACK_CHECKPOINT_PAGES``): the commit that
    checkpoints copies the whole log into the file and flushes it, and an append that did so
    kept its requests, and every request queued behind them, waiting for it.
    """

    def __init__(self, url: str, *, shared: bool = False, checkpoints: bool = True) -> None:
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
            _bind_null_directly()
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
        # The writer's transactions take SQLite's write lock only at their first write, when
        # connections are not shared between threads (an in-memory store's are).
        self._lazy = self.is_sqlite and "poolclass" not in kwargs and fcntl is not None
        # Another process of this sidecar (its applier) writes the file too: the write lock is
        # the file's, and so is the state lock (see transaction()).
        self.shared = shared and self._lazy and self.sqlite_path is not None
        self._claim: int | None = None  # the descriptor of the locked -serving file
        if self.is_sqlite:
            pages = CHECKPOINT_PAGES if checkpoints else FALLBACK_CHECKPOINT_PAGES
            event.listen(self.engine, "connect", partial(_sqlite_pragmas, pages))
            event.listen(self.engine, "begin", _sqlite_begin)
        if self._lazy:
            event.listen(self.engine, "commit", _sqlite_end)
            event.listen(self.engine, "rollback", _sqlite_end)
            event.listen(self.engine, "before_cursor_execute", self._begin_writing)
            event.listen(self.engine.pool, "checkout", _unbegun_on_checkout)
        # The same pool; its connections begin with the write lock on SQLite.
        self.write_engine = self.engine.execution_options(**{_WRITE: True})
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self._write_sessions = sessionmaker(
            self.engine.execution_options(**{_WRITE: _LAZY}) if self._lazy else self.write_engine,
            expire_on_commit=False,
            autoflush=True,
        )
        self._taken = threading.local()  # write locks this thread's lazy transaction took
        # SQLite has one writer at a time: the threads that write (the inbox's appender, the
        # writer) take turns in-process rather than through SQLite's sleeping busy handler.
        self._lock: threading.RLock | FileLock = (
            FileLock(f"{self.sqlite_path}{WRITING_SUFFIX}") if self.shared else threading.RLock()
        )
        self.write_lock: threading.RLock | FileLock | contextlib.nullcontext[None] = (
            self._lock if self.is_sqlite else contextlib.nullcontext()
        )
        # Held for the whole of every writer transaction when the file is shared: their reads
        # before the write lock need no other writer of the tables but the inbox (see
        # transaction()), and the other process's writer is one.
        self._state_lock: FileLock | contextlib.nullcontext[None] = (
            FileLock(f"{self.sqlite_path}{STATE_SUFFIX}")
            if self.shared
            else contextlib.nullcontext()
        )
        # Called for every flip a transaction adds, in that transaction (the outbox).
        self.on_flip: Callable[[Session, FlipRecord], None] | None = None
        self.on_relabel: Callable[[Session, Job, Mapping[str, str]], None] | None = None

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
        with self._opening():
            upgrade(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """The writer's transaction. On SQLite it reads without the write lock and takes it
        (BEGIN IMMEDIATE) at its first write, or at :meth:`Tx.hold_writes`: the applier works
        out a batch's effects while the inbox's appends go on committing, and holds the lock
        only to write them. Its reads need no snapshot: the writer's thread is the only
        writer of every table but the inbox, and the inbox's appends only add rows after those
        it has read. Then the writes are one serializable transaction, as before. When another
        process of the sidecar writes the file too (``shared``: its applier, or the server
        beside it), its writer's transactions and this one's take turns through the state
        lock, held for the whole transaction, so that stays true of the two of them."""
        if not self._lazy:
            with self.write_lock:
                yield from self._transaction()
            return
        try:
            with self._state_lock:
                yield from self._transaction()
        finally:
            for _ in range(self._taken.__dict__.pop("count", 0)):
                self._lock.release()

    def _transaction(self) -> Iterator[Tx]:
        tx: Tx | None = None
        try:
            with self._write_sessions.begin() as session:
                tx = self._tx(session)
                yield tx
        finally:
            # Once committed (the commit writes what the Tx holds), let its rows go. The Tx and
            # its session refer to each other (its listeners), so only the cyclic collector
            # frees them, and a batch of the applier's that outlived a young collection would
            # wait for a full one with the rows it read and wrote (a few MB per 1,000 events)
            # still held: several batches' worth at once.
            if tx is not None:
                tx.reset_cache()

    def _tx(self, session: Session) -> Tx:
        return Tx(
            session,
            locking=not self.is_sqlite,
            on_flip=self.on_flip,
            on_relabel=self.on_relabel,
        )

    def _begin_writing(self, conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        """Before the first statement of a lazy transaction that is not a read: take the write
        lock, then BEGIN IMMEDIATE (unless that statement is it: :meth:`Tx.hold_writes`)."""
        info = conn.info
        if not info.get(LAZY_BEGIN) or _READS.match(statement):
            return
        del info[LAZY_BEGIN]
        self._lock.acquire()
        self._taken.count = getattr(self._taken, "count", 0) + 1
        if statement != BEGIN_IMMEDIATE:
            cursor.execute(BEGIN_IMMEDIATE)

    @contextmanager
    def append_transaction(self, kept: Connection | None = None) -> Iterator[Connection]:
        """A Core write transaction (the inbox's appends: no ORM on the hot path), on ``kept``
        (see :meth:`append_connection`) or on a connection from the pool."""
        if kept is None:
            with self.write_lock, self.write_engine.begin() as conn:
                yield conn
            return
        with self.write_lock, kept.begin():
            yield kept

    def append_connection(self) -> Connection | None:
        """A write connection for the inbox's appender to keep between its group commits, on
        a SQLite file (None elsewhere: PostgreSQL's pool checks a connection is alive as it
        hands it out, which a kept one would miss). Taking one from the pool and giving it
        back (its checkout, its reset, their events) cost a ping flood's group commit a tenth
        of its time (docs/benchmarks.md, twenty-first round)."""
        if self.sqlite_path is None:
            return None
        return self.write_engine.connect()

    def claim(self) -> None:
        """Serve this store alone: a SQLite file takes one sidecar, whose writer reads without
        the write lock (see :meth:`transaction`) and whose evaluator judges every job. A
        second sidecar on the same file gets a :class:`ConfigError` naming the first one's
        process id, instead of applying the same events and sending the same notifications
        twice. The lock is the kernel's: it goes with the process, however that ends."""
        if self.sqlite_path is None or fcntl is None or self._claim is not None:
            return
        path = f"{self.sqlite_path}{SERVING_SUFFIX}"
        with self._opening():
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"store {self.display_url}: another jobpulse sidecar (process {other}) is "
                "serving it; a SQLite store takes one sidecar (stop that one, or use "
                "PostgreSQL for replicas)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._claim = fd

    def dispose(self) -> None:
        self.engine.dispose()
        for lock in (self._lock, self._state_lock):
            if isinstance(lock, FileLock):
                lock.close()
        if self._claim is not None:
            os.close(self._claim)  # the lock with it; the file stays, as -shm does
            self._claim = None
