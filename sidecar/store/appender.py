"""The inbox's appender: a group-commit thread in front of the ``inbox`` table.

The requests that arrive while one batch commits form the next, checked for duplicates in a few
statements for the whole batch, inserted with one prepared ``executemany`` and committed with
one fsync; each request's future is answered after the commit. The job cap and unknown jobs are
decided here from the :class:`~.inbox.Registry`, before the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from jobpulse.instrumentation.wire import Event

from ..domain.tables import EventKey, Job
from .groupcommit import GroupCommit, StoreUnavailable
from .inbox import (
    CREATE,
    INBOX,
    PAIR_LATEST,
    IngestResult,
    Registry,
    encode,
    key_ts,
    lock_for_pass,
)
from .pairs import MAX_PAIRS, PairsQuery, pairs_args, pairs_sql, unnest_binary

if TYPE_CHECKING:
    from ..domain.clock import Clock
    from .database import Store

__all__ = ["MAX_BATCH", "Appender"]

log = logging.getLogger("jobpulse.sidecar.inbox")

MAX_BATCH = 256  # requests per append transaction
_EVENTS = cast(Table, EventKey.__table__)
_COLUMNS = ("job", "run_id", "type", "key_ts", "ts", "arrived_at", "flags", "body")
_INSERT_INTO = f"INSERT INTO {INBOX.name} ({', '.join(_COLUMNS)}) VALUES "
_ROW_SQLITE = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
# SQLite: rows go in multi-row INSERTs of a power of two rows each (so a few statements stay
# prepared in the driver's cache), at most _ROWS_SQLITE (512 parameters: within the limit of
# 999 of SQLite before 3.32). An executemany steps once per row, and the driver lets go of the
# interpreter lock around every step: with the event loop answering in the other thread, each
# step waited to get it back. In a ping flood (groups of ~45 pings) the insert took 0.36 ms of
# each group commit's 1.8 ms that way, 0.20 ms as one statement (docs/benchmarks.md).
_ROWS_SQLITE = 64
_INSERT_SQLITE = {
    size: _INSERT_INTO + ", ".join([_ROW_SQLITE] * size)
    for size in (1 << bit for bit in range(_ROWS_SQLITE.bit_length()))
}
# PostgreSQL: one binary array per column, unnested (see pairs.unnest_binary): one short
# statement for any number of rows. A multi-row VALUES list was over psycopg's 4 KB limit for
# the statements whose conversion it caches, so every group commit parsed its thousands of
# placeholders again with regular expressions: half of the appender's time under batched
# ingest (docs/benchmarks.md, seventeenth round; the pairs lookups had the same cost).
_PG_TYPES = ("text", "text", "text", "float8", "float8", "float8", "integer", "text")
_INSERT_PG = (
    f"INSERT INTO {INBOX.name} ({', '.join(_COLUMNS)}) {unnest_binary(*_PG_TYPES)} "
    "RETURNING id, job, run_id, type, key_ts"
)


# Keys among a batch's (job, run_id) pairs already stored: waiting in the inbox, or applied
# (the engine's ``events`` table). Both read through the unique keys' indexes, (run_id, job,
# ...) and (run_id, job_id, ...), one probe per pair (see ``pairs.py``).
_KEYS_STORED = (
    PairsQuery(
        names="job, run_id",
        columns="i.job, i.run_id, i.type, i.key_ts",
        lookups=((INBOX.name, "i", "i.job = k.job AND i.run_id = k.run_id"),),
    ),
    PairsQuery(
        names="job, run_id",
        columns="j.name, e.run_id, e.type, e.key_ts",
        lookups=(
            (Job.__tablename__, "j", "j.name = k.job"),
            (_EVENTS.name, "e", "e.job_id = j.id AND e.run_id = k.run_id"),
        ),
    ),
)


Answer = IngestResult | Exception


@dataclass(slots=True)
class _Request:
    events: Sequence[Event]
    flags: int
    check_keys: bool  # False when the run ids were made here (a ping without rid)
    at: float | None
    # A thread's request (submit) is answered on its future; an event loop's (append) on an
    # asyncio future, all of a batch's at once, in one call on that future's loop.
    future: Future[IngestResult] | asyncio.Future[IngestResult]


def _resolve(future: Future[IngestResult] | asyncio.Future[IngestResult], answer: Answer) -> None:
    if isinstance(answer, Exception):
        future.set_exception(answer)
    else:
        future.set_result(answer)


def _settle(answers: list[tuple[asyncio.Future[IngestResult], Answer]]) -> None:
    """On the loop: answer a batch's requests (one that gave up waiting is left alone)."""
    for future, answer in answers:
        if not future.done():
            _resolve(future, answer)


def _flags(create: bool, pair_latest: bool) -> int:
    return (CREATE if create else 0) | (PAIR_LATEST if pair_latest else 0)


def _wanted(req: _Request) -> bool:
    """Still waited for: a thread's future not cancelled (and now running), or a loop's not
    given up (it may still give up; its answer is then dropped on the loop)."""
    if isinstance(req.future, Future):
        return req.future.set_running_or_notify_cancel()
    return not req.future.cancelled()


class Appender(GroupCommit[_Request]):
    """Group commit of accepted events into the inbox (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        clock: Clock,
        *,
        job_cap: int,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        super().__init__(name="jobpulse-inbox", max_batch=MAX_BATCH)
        self._store = store
        self._registry = registry
        self._clock = clock
        self._job_cap = job_cap
        self._on_commit = on_commit
        self.healthy = True
        # The appender thread's own connection on a SQLite file, kept between group commits
        # (see Store.append_connection); given back after a failed append (see _commit).
        self._kept: Connection | None = None
        dialect = sqlite if store.is_sqlite else postgresql
        # After an IntegrityError (another replica appended one of the keys meanwhile), rows are
        # inserted one by one, each deciding for itself (see _insert_rows for the batch).
        self._insert_one = (
            dialect.insert(INBOX)
            .values({c: bindparam(c) for c in _COLUMNS})
            .on_conflict_do_nothing()
            .returning(INBOX.c.id)
        )

    def _fail(self, item: _Request, error: Exception) -> None:
        self._answer([(item, error)])

    def stop(self) -> None:
        super().stop()
        self.release_connection()

    def _connection(self) -> Connection | None:
        if self._kept is None:
            self._kept = self._store.append_connection()
        return self._kept

    def release_connection(self) -> None:
        """Give the kept connection back to the pool (the appender's thread uses it: only while
        no append is in flight); the next append takes a new one."""
        kept, self._kept = self._kept, None
        if kept is not None:
            with contextlib.suppress(Exception):  # it failed already; the pool replaces it
                kept.close()

    def submit(
        self,
        events: Sequence[Event],
        *,
        create: bool = True,
        pair_latest: bool = False,
        check_keys: bool = True,
        at: float | None = None,
    ) -> Future[IngestResult]:
        """Append from a thread: the future is answered once the events are durable."""
        fut: Future[IngestResult] = Future()
        self._enqueue(_Request(events, _flags(create, pair_latest), check_keys, at, fut))
        return fut

    async def append(
        self,
        events: Sequence[Event],
        *,
        create: bool = True,
        pair_latest: bool = False,
        check_keys: bool = True,
    ) -> IngestResult:
        """Append from the event loop: returns once the events are durable. A batch's answers
        reach the loop in one call (not a thread-safe wake-up per request)."""
        fut: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._enqueue(_Request(events, _flags(create, pair_latest), check_keys, None, fut))
        return await fut

    def _commit_batch(self, batch: list[_Request]) -> None:
        batch = [r for r in batch if _wanted(r)]
        if batch:
            self._answer(self._commit(batch))

    def _answer(self, answers: list[tuple[_Request, Answer]]) -> None:
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[IngestResult], Answer]]]
        on_loops = {}
        for req, answer in answers:
            future = req.future
            if isinstance(future, Future):
                _resolve(future, answer)
            else:
                on_loops.setdefault(future.get_loop(), []).append((future, answer))
        for loop, settled in on_loops.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, settled)

    def _commit(self, batch: list[_Request]) -> list[tuple[_Request, Answer]]:
        started = time.perf_counter()
        try:
            results, new_names = self._try(batch)
        except Exception:
            self.release_connection()  # the next append starts on a fresh one
            if len(batch) > 1:
                # Something in one request breaks the batch: each request alone, so one bad
                # request does not cost the others their answer.
                log.warning("inbox batch of %d failed; appending request by request", len(batch))
                return [answer for req in batch for answer in self._commit([req])]
            log.exception("inbox append failed")
            self.healthy = False
            return [(batch[0], StoreUnavailable("the store cannot take writes"))]
        self.healthy = True
        for name in new_names:
            self._registry.add(name)
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(batch))
        return list(zip(batch, results, strict=True))

    def _try(self, batch: list[_Request]) -> tuple[list[IngestResult], set[str]]:
        try:
            return self._append(batch, careful=False)
        except IntegrityError:
            # Another replica appended one of these keys between our check and our insert:
            # again, each row deciding for itself.
            return self._append(batch, careful=True)

    def _append(
        self, batch: list[_Request], *, careful: bool
    ) -> tuple[list[IngestResult], set[str]]:
        registry = self._registry
        with self._store.append_transaction(self._connection()) as conn:
            if not self._store.is_sqlite:
                lock_for_pass(conn, exclusive=False)  # SQLite: the write lock already holds
            now = self._clock.now()  # after the lock: see store/inbox.py
            registry.resolve(conn, (ev.job for req in batch for ev in req.events))
            stored = set() if careful else self._stored_keys(conn, batch)
            new_names: set[str] = set()
            seen: set[tuple[str, str, str, float]] = set()
            results: list[IngestResult] = []
            rows: list[tuple[Any, ...]] = []
            owners: list[tuple[IngestResult, int]] = []
            for req in batch:
                result = IngestResult()
                results.append(result)
                arrived = now if req.at is None else req.at
                for index, ev in enumerate(req.events):
                    result.run_ids.append(ev.run_id)
                    result.ids.append(None)
                    job = ev.job
                    if job not in registry and job not in new_names:
                        reason = self._refuse(job, req.flags, len(registry) + len(new_names))
                        if reason is not None:
                            result.rejected.append({"index": index, "field": "job", **reason})
                            continue
                        new_names.add(job)
                    key = (job, ev.run_id, ev.type, key_ts(ev))
                    if key in seen or key in stored:
                        result.duplicates += 1
                        continue
                    seen.add(key)
                    if ev.job_config and registry.in_file(job):
                        result.warnings.append(
                            f"event {index}: job {job!r} is defined by the configuration "
                            "file; job_config ignored"
                        )
                    rows.append(
                        (job, ev.run_id, ev.type, key[3], ev.ts, arrived, req.flags, encode(ev))
                    )
                    owners.append((result, index))
            if rows:
                ids = self._insert_rows(conn, rows, careful=careful)
                for (result, index), row, row_id in zip(owners, rows, ids, strict=True):
                    if row_id is None:
                        result.duplicates += 1
                        continue
                    result.ids[index] = row_id
                    result.accepted += 1
                    etype = row[2]
                    result.by_type[etype] = result.by_type.get(etype, 0) + 1
        return results, new_names

    def _refuse(self, job: str, flags: int, count: int) -> dict[str, str] | None:
        if not flags & CREATE:
            return {"reason": f"unknown job {job!r}", "code": "unknown_job"}
        if count >= self._job_cap:
            return {
                "reason": f"the job cap ({self._job_cap}) is reached; {job!r} was not registered",
                "code": "job_cap",
            }
        return None

    def _insert_rows(
        self, conn: Connection, rows: list[tuple[Any, ...]], *, careful: bool
    ) -> list[int | None]:
        """Insert ``rows`` (``_COLUMNS`` tuples); their ids, in order (None: a duplicate, which
        only the careful path, row by row, lets through without failing)."""
        if careful:
            return [
                conn.execute(self._insert_one, dict(zip(_COLUMNS, row, strict=True))).scalar()
                for row in rows
            ]
        if self._store.is_sqlite:
            # A few multi-row INSERTs at the driver (see _INSERT_SQLITE). BEGIN IMMEDIATE holds
            # the write lock, so nobody else inserts meanwhile and the rows take consecutive
            # ids, the last of which SQLite tells after each statement.
            last, start = 0, 0
            while start < len(rows):
                size = min(_ROWS_SQLITE, 1 << ((len(rows) - start).bit_length() - 1))
                values = [value for row in rows[start : start + size] for value in row]
                last = conn.exec_driver_sql(_INSERT_SQLITE[size], tuple(values)).lastrowid
                start += size
            return list(range(last - len(rows) + 1, last + 1))
        # PostgreSQL: one INSERT of the columns as arrays, at the driver; the ids matched to
        # the rows by their key (unique in a batch) rather than by the order of RETURNING.
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        ids = {
            (job, run_id, etype, float(kts)): row_id
            for row_id, job, run_id, etype, kts in conn.exec_driver_sql(_INSERT_PG, columns)
        }
        return [ids[(r[0], r[1], r[2], r[3])] for r in rows]

    def _stored_keys(
        self, conn: Connection, batch: list[_Request]
    ) -> set[tuple[str, str, str, float]]:
        """The batch's idempotency keys already in the store: waiting in the inbox, or applied
        (the engine's ``events`` table)."""
        keyed = {(ev.job, ev.run_id) for req in batch if req.check_keys for ev in req.events}
        found: set[tuple[str, str, str, float]] = set()
        pairs = sorted(keyed)
        pg = not self._store.is_sqlite
        for i in range(0, len(pairs), MAX_PAIRS):
            chunk = pairs[i : i + MAX_PAIRS]
            args = pairs_args(chunk, postgresql=pg)
            for template in _KEYS_STORED:
                query = pairs_sql(template, len(chunk), postgresql=pg)
                for job, run_id, etype, kts in conn.exec_driver_sql(query, args):
                    found.add((job, run_id, etype, float(kts)))
        return found
