"""The durable inbox: accept an event by appending it, apply it just behind.

An ingest request is answered once its events are durable in the ``inbox`` table, not once
they are evaluated (DESIGN.md, "Ingest through a durable inbox"):

- :class:`Registry` knows which jobs exist (or were accepted and wait in the inbox), so an
  unknown job without ``create`` and the job cap are decided before the answer.
- :class:`Appender` is a group-commit thread: the requests that arrive while one batch
  commits form the next, checked for duplicates in a few statements for the whole batch,
  inserted with one prepared ``executemany`` and committed with one fsync.
- :func:`apply_rows` runs the domain engine over inbox rows, in order, and deletes them in
  the same transaction as their effects: a crash applies nothing twice and skips nothing, and
  a row whose id committed out of order is simply still there on the next pass.

On SQLite the appender and the writer (which runs the applier and the evaluator) share one
in-process lock around their write transactions. On PostgreSQL each append holds a shared
advisory lock and the evaluator's pass an exclusive one: either way an append whose arrival
time is before the pass's ``now`` has committed before the pass reads the inbox, so no slot
is judged missed while the run that fills it waits in the inbox.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from jobpulse.instrumentation.wire import Event

from .domain.tables import EventKey, InboxRow, Job
from .writer import StoreUnavailable

if TYPE_CHECKING:
    from .domain.clock import Clock
    from .domain.engine import Engine
    from .store import Store, Tx

__all__ = [
    "INBOX_LOCK_KEY",
    "Appender",
    "IngestResult",
    "Registry",
    "StoreUnavailable",
    "apply_rows",
    "decode",
    "encode",
    "inbox_lag",
]

log = logging.getLogger("jobpulse.sidecar.inbox")

INBOX_LOCK_KEY = 0x6A6F62696E62  # "jobinb": appends share it, the evaluator's pass takes it alone
MAX_BATCH = 256  # requests per append transaction
APPLY_BATCH = 200  # events per apply transaction: bounds how long an append waits for the lock
CREATE = 1
PAIR_LATEST = 2
_CHUNK = 400
_INBOX = cast(Table, InboxRow.__table__)
_EVENTS = cast(Table, EventKey.__table__)
_FIELDS = tuple(f.name for f in fields(Event))
_STOP = object()


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)
    # Per event: the run it was applied to (known once applied), and its inbox row.
    run_ids: list[str | None] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)


def encode(ev: Event) -> str:
    """An event's fields as compact JSON (floats round-trip exactly)."""
    return json.dumps([getattr(ev, name) for name in _FIELDS], separators=(",", ":"))


def decode(body: str) -> Event:
    return Event(*json.loads(body))


def key_ts(ev: Event) -> float:
    """The timestamp part of an event's idempotency key: progress and log events repeat within
    a run, so their time tells them apart; a run has one start and one finish."""
    return ev.ts if ev.type in ("progress", "log") else 0.0


class Registry:
    """The names of the jobs that exist or wait in the inbox, with whether the configuration
    file defines each. Misses are looked up in the store (another replica may have created the
    job), so the registry only has to be complete for the job cap; it is reloaded from the
    store now and then to forget jobs deleted elsewhere."""

    def __init__(self) -> None:
        self._jobs: dict[str, bool] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def in_file(self, name: str) -> bool:
        return self._jobs.get(name, False)

    def add(self, name: str, in_file: bool = False) -> None:
        self._jobs[name] = in_file

    def discard(self, name: str) -> None:
        self._jobs.pop(name, None)

    def load(self, conn: Connection) -> None:
        jobs: dict[str, bool] = dict.fromkeys(
            conn.execute(select(_INBOX.c.job).distinct()).scalars(), False
        )
        jobs.update((name, bool(f)) for name, f in conn.execute(select(Job.name, Job.in_file)))
        self._jobs = jobs

    def resolve(self, conn: Connection, names: Iterable[str]) -> None:
        """Look up names the registry does not know in the store."""
        missing = sorted({n for n in names if n not in self._jobs})
        for i in range(0, len(missing), _CHUNK):
            chunk = missing[i : i + _CHUNK]
            for name, in_file in conn.execute(
                select(Job.name, Job.in_file).where(Job.name.in_(chunk))
            ):
                self._jobs[name] = bool(in_file)
            for name in conn.execute(
                select(_INBOX.c.job).where(_INBOX.c.job.in_(chunk)).distinct()
            ).scalars():
                self._jobs.setdefault(name, False)


@dataclass(slots=True)
class _Request:
    events: Sequence[Event]
    flags: int
    check_keys: bool  # False when the run ids were made here (a ping without rid)
    at: float | None
    future: Future[IngestResult]


class Appender:
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
        self._store = store
        self._registry = registry
        self._clock = clock
        self._job_cap = job_cap
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.healthy = True
        dialect = sqlite if store.is_sqlite else postgresql
        self._insert = insert(_INBOX).returning(_INBOX.c.id, sort_by_parameter_order=True)
        self._insert_one = (
            dialect.insert(_INBOX)
            .values({c: bindparam(c) for c in _COLUMNS})
            .on_conflict_do_nothing()
            .returning(_INBOX.c.id)
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="jobpulse-inbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what was submitted before the stop; refuse what comes after it."""
        with self._lock:
            self._stopped = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item.future.set_exception(StoreUnavailable("the sidecar is stopping"))

    def submit(
        self,
        events: Sequence[Event],
        *,
        create: bool = True,
        pair_latest: bool = False,
        check_keys: bool = True,
        at: float | None = None,
    ) -> Future[IngestResult]:
        fut: Future[IngestResult] = Future()
        flags = (CREATE if create else 0) | (PAIR_LATEST if pair_latest else 0)
        with self._lock:
            if self._stopped:
                fut.set_exception(StoreUnavailable("the sidecar is stopping"))
                return fut
            self._queue.put(_Request(events, flags, check_keys, at, fut))
        return fut

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            batch = [r for r in batch if r.future.set_running_or_notify_cancel()]
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        try:
            results, new_names = self._try(batch)
        except Exception:
            if len(batch) > 1:
                # Something in one request breaks the batch: each request alone, so one bad
                # request does not cost the others their answer.
                log.warning("inbox batch of %d failed; appending request by request", len(batch))
                for req in batch:
                    self._commit([req])
                return
            log.exception("inbox append failed")
            self.healthy = False
            batch[0].future.set_exception(StoreUnavailable("the store cannot take writes"))
            return
        self.healthy = True
        for name in new_names:
            self._registry.add(name)
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(batch))
        for req, result in zip(batch, results, strict=True):
            req.future.set_result(result)

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
        with self._store.append_transaction() as conn:
            now = self._clock.now()  # after the lock: see the module docstring
            registry.resolve(conn, (ev.job for req in batch for ev in req.events))
            stored = set() if careful else self._stored_keys(conn, batch)
            new_names: set[str] = set()
            seen: set[tuple[str, str, str, float]] = set()
            results: list[IngestResult] = []
            rows: list[dict[str, Any]] = []
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
                        {
                            "job": job,
                            "run_id": ev.run_id,
                            "type": ev.type,
                            "key_ts": key[3],
                            "ts": ev.ts,
                            "arrived_at": arrived,
                            "flags": req.flags,
                            "body": encode(ev),
                        }
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
                    result.by_type[row["type"]] = result.by_type.get(row["type"], 0) + 1
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
        self, conn: Connection, rows: list[dict[str, Any]], *, careful: bool
    ) -> list[int | None]:
        if not careful:
            return [row_id for (row_id,) in conn.execute(self._insert, rows)]
        return [conn.execute(self._insert_one, row).scalar() for row in rows]

    def _stored_keys(
        self, conn: Connection, batch: list[_Request]
    ) -> set[tuple[str, str, str, float]]:
        """The batch's idempotency keys already in the store: waiting in the inbox, or applied
        (the engine's ``events`` table)."""
        keyed = {(ev.job, ev.run_id) for req in batch if req.check_keys for ev in req.events}
        found: set[tuple[str, str, str, float]] = set()
        pairs = sorted(keyed)
        for i in range(0, len(pairs), _CHUNK):
            chunk = pairs[i : i + _CHUNK]
            jobs = {job for job, _ in chunk}
            run_ids = {run_id for _, run_id in chunk}
            # Both read through the unique keys' indexes: (job, run_id, ...) and (job_id, ...).
            inbox = select(_INBOX.c.job, _INBOX.c.run_id, _INBOX.c.type, _INBOX.c.key_ts).where(
                _INBOX.c.job.in_(jobs), _INBOX.c.run_id.in_(run_ids)
            )
            applied = (
                select(Job.name, _EVENTS.c.run_id, _EVENTS.c.type, _EVENTS.c.key_ts)
                .join(Job, Job.id == _EVENTS.c.job_id)
                .where(Job.name.in_(jobs), _EVENTS.c.run_id.in_(run_ids))
            )
            for query in (inbox, applied):
                for job, run_id, etype, kts in conn.execute(query):
                    found.add((job, run_id, etype, float(kts)))
        return found


_COLUMNS = ("job", "run_id", "type", "key_ts", "ts", "arrived_at", "flags", "body")


@dataclass(slots=True)
class Outcome:
    """What applying one inbox row did: the run it went to, or why the engine refused it."""

    run_id: str | None = None
    duplicate: bool = False
    warning: str | None = None
    rejected: str | None = None


def _is_every(tx: Tx, engine: Engine, ev: Event) -> bool:
    job = tx.job(ev.job)
    if job is not None:
        return engine.config(job).schedule.kind == "every"
    return bool(ev.job_config and "every" in ev.job_config)


def apply_rows(
    tx: Tx,
    engine: Engine,
    *,
    now: float,
    limit: int | None = APPLY_BATCH,
    after: int = 0,
    held_first: bool = False,
) -> tuple[dict[int, Outcome], int, int]:
    """Apply up to ``limit`` inbox rows with ids above ``after``, oldest first, and delete them.

    Each is applied as it arrived (``now`` = its arrival). During the catch-up delay after a
    start (``now`` before ``engine.judge_from``), rows of ``every:`` jobs that arrived in it are
    held back; ``held_first`` applies them, in the order of their ``ts``, before anything else,
    so spooled runs delivered newest first do not mark an older interval missed.

    Returns the outcomes by row id, the last id read, and how many rows were read.
    """
    conn = tx.session.connection()
    columns = (_INBOX.c.id, _INBOX.c.arrived_at, _INBOX.c.flags, _INBOX.c.body)
    query = select(*columns)
    if held_first:
        query = query.where(_INBOX.c.arrived_at < engine.judge_from).order_by(
            _INBOX.c.ts, _INBOX.c.id
        )
    else:
        query = query.where(_INBOX.c.id > after).order_by(_INBOX.c.id)
    if limit is not None:
        query = query.limit(limit)
    if tx.locking:
        query = query.with_for_update(skip_locked=True)
    rows = [(i, arrived, flags, decode(body)) for i, arrived, flags, body in conn.execute(query)]
    if not rows:
        return {}, after, 0
    holding = now < engine.judge_from and not held_first
    engine.prefetch(tx, [ev for _, _, _, ev in rows])
    outcomes: dict[int, Outcome] = {}
    done: list[int] = []
    from .domain.engine import Rejected

    for row_id, arrived, flags, ev in rows:
        if holding and arrived < engine.judge_from and _is_every(tx, engine, ev):
            continue
        try:
            applied = engine.apply(
                tx, ev, arrived, create=bool(flags & CREATE), pair_latest=bool(flags & PAIR_LATEST)
            )
        except Rejected as exc:
            log.warning("inbox event for job %r refused when applied: %s", ev.job, exc.reason)
            outcomes[row_id] = Outcome(run_id=ev.run_id, rejected=exc.code)
        else:
            outcomes[row_id] = Outcome(applied.run_id, applied.duplicate, applied.warning)
        done.append(row_id)
    for i in range(0, len(done), _CHUNK):
        conn.execute(delete(_INBOX).where(_INBOX.c.id.in_(done[i : i + _CHUNK])))
    return outcomes, rows[-1][0], len(rows)


def drop_row(tx: Tx, row_id: int) -> str | None:
    """Remove one row the engine cannot apply; returns its body for the log."""
    conn = tx.session.connection()
    body = conn.execute(select(_INBOX.c.body).where(_INBOX.c.id == row_id)).scalar()
    conn.execute(delete(_INBOX).where(_INBOX.c.id == row_id))
    return body


def row_ids(tx: Tx, *, after: int, limit: int) -> list[int]:
    conn = tx.session.connection()
    query = select(_INBOX.c.id).where(_INBOX.c.id > after).order_by(_INBOX.c.id).limit(limit)
    return list(conn.execute(query).scalars())


def inbox_lag(conn: Connection) -> tuple[int, float | None]:
    """How many events wait in the inbox, and when the oldest of them arrived."""
    count, oldest = conn.execute(select(func.count(), func.min(_INBOX.c.arrived_at))).one()
    return int(count or 0), oldest


def pending_among(conn: Connection, ids: Sequence[int]) -> int:
    """How many of ``ids`` are still in the inbox."""
    total = 0
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        total += (
            conn.execute(
                select(func.count()).select_from(_INBOX).where(_INBOX.c.id.in_(chunk))
            ).scalar()
            or 0
        )
    return total


def forget_job(tx: Tx, name: str) -> None:
    """A deleted job's events still waiting must not bring it back."""
    tx.session.connection().execute(delete(_INBOX).where(_INBOX.c.job == name))


def lock_for_pass(conn: Connection, *, exclusive: bool) -> None:
    """PostgreSQL: appends share the inbox lock; the evaluator's pass holds it alone."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(text(f"SELECT {fn}(:key)"), {"key": INBOX_LOCK_KEY})
