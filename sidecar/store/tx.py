"""A transaction: the unit of work the domain engine reads and writes through (it satisfies
:class:`jobpulse.sidecar.domain.transaction.Tx`).

Several replicas on one PostgreSQL: every transaction that changes a job first locks its row
(``SELECT ... FOR UPDATE``), so replicas ingesting for the same job serialise; the evaluator
takes due rows with ``SKIP LOCKED``; hourly rollups are created with ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    Table,
    Update,
    bindparam,
    delete,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstanceState, Session
from sqlalchemy.orm.attributes import instance_state

from ..domain.maintenance import Window
from ..domain.rollup import HourRollup, Stats, hour_of
from ..domain.tables import (
    JOB_COLUMNS,
    RUNNING,
    EventKey,
    Flip,
    FlipRecord,
    Job,
    JobUpstream,
    MaintenanceRow,
    Run,
    Slot,
    loaded,
)
from .bulk import Bulk, Statement
from .readahead import ROLLUP_FIELDS, ROLLUPS, SELECT_ROLLUPS, ReadAhead

__all__ = ["BEGIN_IMMEDIATE", "LAZY_BEGIN", "Tx"]

BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
# In a connection's info: its SQLite transaction is not begun until it writes.
LAZY_BEGIN = "jobpulse_lazy_begin"

_JOB_BY_NAME = select(Job).where(Job.name == bindparam("name"))
_JOB_BY_NAME_LOCKED = _JOB_BY_NAME.with_for_update()
_RUN_BY_ID = select(Run).where(Run.job_id == bindparam("job_id"), Run.run_id == bindparam("run_id"))
_RUNNING = select(Run).where(Run.job_id == bindparam("job_id"), RUNNING)
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
_STARTED_BETWEEN = select(Run).where(
    Run.job_id == bindparam("job_id"),
    Run.started_at >= bindparam("lo"),
    Run.started_at <= bindparam("hi"),
)
_ROLLUP = SELECT_ROLLUPS.where(
    ROLLUPS.c.job_id == bindparam("job_id"), ROLLUPS.c.hour == bindparam("hour")
)
# The API's maintenance windows that were ever open (one ended before it opened never was).
_MAINTENANCE = (
    select(MaintenanceRow)
    .where(MaintenanceRow.ends_at > MaintenanceRow.starts_at)
    .order_by(MaintenanceRow.id)
)
_UNFLUSHED = 1 << 62  # sorts runs not yet given an id after every stored one, in insertion order


class Tx(ReadAhead):
    """What the domain engine needs from a transaction, over an ORM session.

    The engine's reads see its own unwritten changes without flushing the session before each
    query: runs and slots added in this transaction are indexed here and merged into what the
    store returns, and the session is flushed once, at the end of the writer's batch (or of a
    request's savepoint when a batch is applied request by request). The ``load_*`` methods
    read what a batch will need in bulk beforehand. (Slots and runs are never deleted within an
    engine transaction; whatever deletes rows flushes and then calls :meth:`reset_cache`.)
    """

    def __init__(
        self,
        session: Session,
        *,
        locking: bool = False,
        on_flip: Callable[[Session, FlipRecord], None] | None = None,
        on_relabel: Callable[[Session, Job, Mapping[str, str]], None] | None = None,
    ) -> None:
        self.session = session
        self._dialect = session.get_bind().dialect  # what write_pending prepares for
        # Adds what a flip, or a down job's new labels, entails to the same transaction (the
        # notification outbox).
        self.on_flip = on_flip
        self.on_relabel = on_relabel
        # PostgreSQL: lock job rows (SQLite's BEGIN IMMEDIATE already serialises writers).
        self.locking = locking
        self._jobs: dict[str, Job | None] = {}
        self._rollups: dict[tuple[int, int], HourRollup] = {}
        self._absent_rollups: set[tuple[int, int]] = set()
        # Rollups counted into and not yet written (the engine asked for them to count), and
        # of those the ones not stored yet: written with the keys, before each flush.
        self._changed_rollups: dict[tuple[int, int], HourRollup] = {}
        self._new_rollups: set[tuple[int, int]] = set()
        self._job_count: int | None = None
        self._runs: dict[tuple[int, str], Run | None] = {}
        self._running: dict[int, list[Run]] = {}  # running when loaded or added; filtered on read
        self._slots: dict[tuple[int, float], Slot | None] = {}
        self._added_slots: dict[int, dict[float, Slot]] = {}
        # Slots added here are not session objects (an ORM insert cost the applier more than
        # the matching): the new ones are inserted by write_pending, and a written one
        # changed later in the transaction (see slot_changed) is updated there.
        self._new_slots: list[Slot] = []
        self._written_slots: set[tuple[int, float]] = set()
        self._changed_slots: dict[tuple[int, float], Slot] = {}
        self._new_flips: list[FlipRecord] = []  # likewise: inserted by write_pending
        # Runs added here likewise (the ORM's insert of a run cost more than the engine's work
        # on the event that made it): inserted by write_pending; one written and changed later
        # in the transaction is updated there, found by comparing with its values as written.
        self._new_runs: list[Run] = []
        self._written_runs: dict[Run, tuple[Any, ...]] = {}
        self._pending_order: dict[Run, int] = {}
        # Slots of the store loaded in bulk: per job, the range [lo, hi] they cover in full.
        self._slot_cover: dict[int, tuple[float, float]] = {}
        self._stored_slots: dict[int, dict[float, Slot]] = {}
        # Idempotency keys read ahead: True if stored or claimed here, False if not stored.
        self._keys: dict[tuple[int, str, str, float], bool] = {}
        # Claimed keys not yet written: one executemany before each flush (no ORM objects).
        self._new_keys: list[dict[str, Any]] = []
        # Statements at the driver for the end of the next write_pending (see defer).
        self._deferred: list[Statement] = []
        event.listen(session, "before_flush", self.write_pending)
        event.listen(session, "before_commit", self.write_pending)
        # Per job: (first hour, its durations from that hour on) for slow-run detection.
        self._windows: dict[int, tuple[int, Stats]] = {}
        # Per job name: the names of the jobs whose after: names it.
        self._downstream: dict[str, list[str]] = {}
        # The API's maintenance windows, read once per transaction.
        self._maintenance: list[Window] | None = None

    def maintenance_windows(self) -> list[Window]:
        if self._maintenance is None:
            with self.session.no_autoflush:
                rows = self.session.scalars(_MAINTENANCE)
                self._maintenance = [Window.from_row(row) for row in rows]
        return self._maintenance

    def forget_maintenance(self) -> None:
        """The API's windows changed in this transaction: read them again when asked."""
        self._maintenance = None

    def hold_writes(self) -> None:
        """From now on, hold the store's write lock (SQLite: BEGIN IMMEDIATE) until the end of
        the transaction, which otherwise takes it only at its first write: no other writer
        commits in between. The evaluator's pass holds it so no append commits while the
        inbox is read and slots are judged."""
        conn = self.session.connection()
        if conn.info.get(LAZY_BEGIN):
            conn.exec_driver_sql(BEGIN_IMMEDIATE)

    def reset_cache(self) -> None:
        """Forget cached rows: after a savepoint rolled back (which discards unwritten rows), or
        after rows were deleted (:meth:`write_pending` and flush first: reads that follow see
        only the store)."""
        self._jobs.clear()
        self._rollups.clear()
        self._absent_rollups.clear()
        self._changed_rollups.clear()
        self._new_rollups.clear()
        self._windows.clear()
        self._maintenance = None
        self._job_count = None
        self._runs.clear()
        self._running.clear()
        self._slots.clear()
        self._added_slots.clear()
        self._new_slots.clear()
        self._written_slots.clear()
        self._changed_slots.clear()
        self._new_flips.clear()
        self._new_runs.clear()
        self._written_runs.clear()
        self._pending_order.clear()
        self._slot_cover.clear()
        self._stored_slots.clear()
        self._keys.clear()
        self._new_keys.clear()
        self._deferred.clear()
        self._downstream.clear()

    def job(self, name: str) -> Job | None:
        if name not in self._jobs:
            query = _JOB_BY_NAME_LOCKED if self.locking else _JOB_BY_NAME
            with self.session.no_autoflush:
                self._jobs[name] = self.session.scalars(query, {"name": name}).first()
        return self._jobs[name]

    def add_job(self, job: Job) -> None:
        self.session.add(job)
        self.session.flush()
        # The columns left NULL are not in the new row's dict, as they are in a row read:
        # put them there, so the engine reads every column from it (``tables.loaded``).
        values = loaded(job)
        for name in JOB_COLUMNS:
            values.setdefault(name, None)
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

    def run(self, job_id: int, run_id: str) -> Run | None:
        key = (job_id, run_id)
        if key not in self._runs:
            with self.session.no_autoflush:
                params = {"job_id": job_id, "run_id": run_id}
                self._runs[key] = self.session.scalars(_RUN_BY_ID, params).first()
        return self._runs[key]

    def add_run(self, run: Run) -> None:
        """Record a new run (inserted by :meth:`write_pending`, not through the session: it
        stays this transaction's object, never given an id)."""
        job_id = run.job_id
        if run.outcome == "running":
            self._running_candidates(job_id).append(run)
        self._new_runs.append(run)
        self._pending_order[run] = _UNFLUSHED + len(self._pending_order)
        self._runs[(job_id, run.run_id)] = run

    def _running_candidates(self, job_id: int) -> list[Run]:
        runs = self._running.get(job_id)
        if runs is None:
            with self.session.no_autoflush:
                stored = self.session.scalars(_RUNNING, {"job_id": job_id})
                runs = [self._known(run) for run in stored]
            self._running[job_id] = runs
        return runs

    def running_runs(self, job_id: int) -> list[Run]:
        """The job's running runs, oldest start first (ties in the order they were added)."""
        candidates = self._running_candidates(job_id)
        runs = [run for run in candidates if run.outcome == "running"]
        if len(runs) < len(candidates):
            # A run never runs again once finished: the next read need not look at it (a
            # job's finish-only runs would otherwise make each refresh read all the batch's).
            candidates[:] = runs
        if len(runs) > 1:
            runs.sort(key=self._run_order)
        return runs

    def _run_order(self, run: Run) -> tuple[float, int]:
        return (run.started_at, run.id if run.id is not None else self._pending_order[run])

    def latest_running(self, job_id: int) -> Run | None:
        runs = self.running_runs(job_id)
        return runs[-1] if runs else None

    def runs_started_between(self, job_id: int, lo: float, hi: float) -> list[Run]:
        """The job's runs that started in ``[lo, hi]``, this transaction's included, oldest
        first."""
        with self.session.no_autoflush:
            params = {"job_id": job_id, "lo": lo, "hi": hi}
            stored = self.session.scalars(_STARTED_BETWEEN, params)
            found = dict.fromkeys(self._known(run) for run in stored)
        for run in self._pending_order:
            if run.job_id == job_id and lo <= run.started_at <= hi:
                found[run] = None
        return sorted(found, key=self._run_order)

    def downstreams(self, name: str) -> list[Job]:
        """The jobs that run after ``name`` (their ``after:`` names it)."""
        if name not in self._downstream:
            self.load_downstreams([name])
        return [job for n in self._downstream[name] if (job := self.job(n)) is not None]

    def set_upstreams(self, job_id: int, names: Sequence[str]) -> None:
        """Replace the job's ``after:`` entries."""
        self.session.execute(delete(JobUpstream).where(JobUpstream.job_id == job_id))
        for upstream in dict.fromkeys(names):
            self.session.add(JobUpstream(job_id=job_id, upstream=upstream))
        self.session.flush()
        self._downstream.clear()

    def claim_event(
        self, job_id: int, run_id: str, etype: str, key_ts: float, now: float, message: str | None
    ) -> bool:
        """Record the event's idempotency key; False if it was already there.

        A key read ahead as not stored is written with the batch, in one executemany before
        the flush (:meth:`write_pending`); otherwise one statement claims it. Either way the
        unique key decides, so two writers racing on the same event cannot both win (the
        loser's flush fails and its batch is applied again, when it finds the key)."""
        key = (job_id, run_id, etype, key_ts)
        known = self._keys.get(key)
        if known:
            return False
        self._keys[key] = True
        params = {
            "job_id": job_id,
            "run_id": run_id,
            "type": etype,
            "key_ts": key_ts,
            "received_at": now,
            "message": message if etype in ("log", "progress") else None,
        }
        if known is not None:  # read ahead as not stored
            self._new_keys.append(params)
            return True
        statement = _CLAIM_PG if self.locking else _CLAIM_SQLITE
        return self.session.connection().execute(statement, params).first() is not None

    def write_pending(self, *_: Any) -> None:
        """Write what this transaction keeps outside the session (before each flush, before the
        commit, and at the end of each savepoint of the writer):

        - the claimed keys read ahead as absent: one executemany without RETURNING. The unique
          key still decides: a key another writer stored meanwhile fails the statement like a
          failed flush would;
        - the slots added: one executemany INSERT (the unique key decides likewise), and one
          UPDATE of those written earlier in the transaction and changed since;
        - the flips added: one executemany INSERT;
        - the runs added: one executemany INSERT, and one UPDATE of those written earlier in
          the transaction whose values changed since;
        - the jobs changed (see :meth:`_job_updates`);
        - the rollups counted into: one executemany INSERT of the hours not stored (their
          primary key decides likewise) and one UPDATE of the others, with the values counted
          here (on PostgreSQL the job's row lock, taken first, serialises them);
        - last, the statements deferred to it (:meth:`defer`).

        Every statement's parameters are worked out first, and then the statements executed
        back to back: on SQLite the first of them takes the write lock (see
        ``Store.transaction``), which the inbox's appends wait for, so it is held for the
        writes alone, not for the Python that prepares them."""
        dialect = self._dialect
        statements: list[Statement] = []
        if self._new_keys:
            keys, self._new_keys = self._new_keys, []
            statements += _INSERT_KEYS.prepare(dialect, keys)
        if self._new_slots or self._changed_slots:
            added, self._new_slots = self._new_slots, []
            updated, self._changed_slots = self._changed_slots, {}
            statements += _UPDATE_SLOT.prepare(
                dialect, [_values(s, _SLOT_FIELDS, _SLOT_KEY) for s in updated.values()]
            )
            statements += _INSERT_SLOTS.prepare(
                dialect, [_values(s, _SLOT_KEY + _SLOT_FIELDS) for s in added]
            )
            self._written_slots.update((slot.job_id, slot.slot) for slot in added)
        if self._new_runs or self._written_runs:
            statements += self._run_writes()
        if self._new_flips:
            flips, self._new_flips = self._new_flips, []
            statements += _INSERT_FLIPS.prepare(
                dialect, [_values(flip, _FLIP_FIELDS) for flip in flips]
            )
        jobs = self._job_updates(statements) if self._jobs else []
        if self._changed_rollups:
            changed, self._changed_rollups = self._changed_rollups, {}
            new = [
                _values(r, ROLLUP_FIELDS) for key, r in changed.items() if key in self._new_rollups
            ]
            old = [
                _values(r, _COUNTERS, _ROLLUP_KEY)
                for key, r in changed.items()
                if key not in self._new_rollups
            ]
            self._new_rollups.difference_update(changed)
            statements += _INSERT_ROLLUPS.prepare(dialect, new)
            statements += _UPDATE_ROLLUP.prepare(dialect, old)
        statements += self._deferred
        self._deferred = []
        if not statements:
            return
        conn = self.session.connection()
        for sql, params in statements:
            conn.exec_driver_sql(sql, params)
        identity = self.session.identity_map
        for state, values in jobs:
            state._commit_all(values, identity)  # clean to the session, as after its flush

    def defer(self, statement: Statement) -> None:
        """Execute ``statement`` (at the driver) at the end of the next :meth:`write_pending`,
        with this transaction's other writes, rather than now."""
        self._deferred.append(statement)

    def _job_updates(
        self, statements: list[Statement]
    ) -> list[tuple[InstanceState[Job], dict[str, Any]]]:
        """The jobs this transaction read and changed: one executemany UPDATE of the columns
        changed, per set of them, at the driver (added to ``statements``); returned, to be
        made clean to the session once written, as after its flush. The session's flush of
        them cost the applier more than everything else it writes (its unit of work per job,
        and a statement's parameters built per row in Python: a seventh of the applier's time
        at the top of the hour). Jobs the session holds otherwise (an API write's queries) are
        flushed by it as before."""
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        written: list[tuple[InstanceState[Job], dict[str, Any]]] = []
        for job in self._jobs.values():
            if job is None:
                continue
            state = instance_state(job)
            changed = state.committed_state
            if not changed or not state.persistent:
                continue
            values = state.dict
            keys = tuple(sorted(changed))
            groups.setdefault(keys, []).append((*[values[key] for key in keys], values["id"]))
            written.append((state, values))
        for keys, rows in groups.items():
            statements += _UPDATE_JOB.prepare_tuples(self._dialect, (*keys, "key_id"), rows)
        return written

    def _run_writes(self) -> list[Statement]:
        written = self._written_runs
        changed = []
        for run, before in written.items():
            values = _RUN_VALUES(run.__dict__)
            if values != before:
                written[run] = values
                changed.append(values)
        key = len(_RUN_KEY)
        statements = _UPDATE_RUN.prepare_tuples(
            self._dialect, _RUN_UPDATE_KEYS, [values[key:] + values[:key] for values in changed]
        )
        if self._new_runs:
            added, self._new_runs = self._new_runs, []
            rows = [_run_row(run) for run in added]
            statements += _INSERT_RUNS.prepare_tuples(self._dialect, _RUN_COLUMNS, rows)
            written.update(zip(added, rows, strict=True))
        return statements

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
        """Record a new slot (inserted by :meth:`write_pending`, not through the session)."""
        self._new_slots.append(slot)
        self._slots[(slot.job_id, slot.slot)] = slot
        self._added_slots.setdefault(slot.job_id, {})[slot.slot] = slot

    def slot_changed(self, slot: Slot) -> None:
        """A slot this transaction read or added was changed: one added and already written is
        updated by :meth:`write_pending` (a stored one is a session object, and one not written
        yet is inserted as it is then)."""
        key = (slot.job_id, slot.slot)
        if key in self._written_slots:
            self._changed_slots[key] = slot

    def add_flip(self, flip: FlipRecord) -> None:
        """Record a flip (inserted by :meth:`write_pending`: flips are never changed) and what
        it entails (``on_flip``)."""
        self._new_flips.append(flip)
        if self.on_flip is not None:
            self.on_flip(self.session, flip)

    def relabelled(self, job: Job, old: Mapping[str, str]) -> None:
        """``job``'s effective labels changed from ``old`` (what that entails: ``on_relabel``)."""
        if self.on_relabel is not None:
            self.on_relabel(self.session, job, old)

    def rollup(self, job_id: int, at: float) -> HourRollup:
        """The job's rollup of ``at``'s hour, to count into: written by :meth:`write_pending`."""
        key = (job_id, hour_of(at))
        roll = self._rollups.get(key)
        if roll is None and key in self._absent_rollups:
            # Read ahead as not stored: inserted with the batch. The primary key decides, as
            # for idempotency keys: a writer racing to create the same hour makes the loser's
            # statement fail, and its batch is applied again, finding it.
            self._absent_rollups.discard(key)
            roll = HourRollup(job_id, key[1])
            self._new_rollups.add(key)
            self._rollups[key] = roll
        elif roll is None:
            params = {"job_id": job_id, "hour": key[1]}
            with self.session.no_autoflush:
                row = self.session.execute(_ROLLUP, params).first()
                if row is None:
                    # Insert-if-absent, then load: two writers creating the same hour never
                    # collide.
                    statement = _NEW_ROLLUP_PG if self.locking else _NEW_ROLLUP_SQLITE
                    zero = _values(HourRollup(job_id, key[1]), ROLLUP_FIELDS)
                    self.session.connection().execute(statement, zero)
                    row = self.session.execute(_ROLLUP, params).first()
            assert row is not None
            roll = HourRollup(*row)
            self._rollups[key] = roll
        self._changed_rollups[key] = roll
        return roll

    def duration_window(self, job_id: int, since_hour: int) -> Stats:
        """The job's durations in its rollups from ``since_hour`` on, this transaction's
        included: one statement per job per transaction, then kept current by
        :meth:`note_duration` (a batch of a job's runs reads its window once)."""
        cached = self._windows.get(job_id)
        if cached is None or cached[0] != since_hour:
            self.load_duration_windows({job_id: since_hour})
            cached = self._windows[job_id]
        return cached[1]

    def note_duration(self, job_id: int, at: float, duration: float) -> None:
        """A duration was added to the job's rollup of ``at``'s hour: count it in the window
        read by :meth:`duration_window`, if that hour is in it."""
        cached = self._windows.get(job_id)
        if cached is not None and hour_of(at) >= cached[0]:
            cached[1].add_duration(duration)


_EVENT_KEYS = cast(Table, EventKey.__table__)
_SLOTS = cast(Table, Slot.__table__)
_FLIPS = cast(Table, Flip.__table__)
_FLIP_FIELDS = ("job_id", "at", "from_state", "to_state", "reason")
_SLOT_KEY = ("job_id", "slot")
_SLOT_FIELDS = ("status", "run_id", "count", "reason", "upstream", "recorded_at")
_ROLLUP_KEY = ("job_id", "hour")
_COUNTERS = ROLLUP_FIELDS[2:]  # after job_id and hour


def _update_by_key(table: Table, key: tuple[str, ...], fields: Sequence[str]) -> Update:
    """UPDATE ``table`` SET ``fields`` for the row whose ``key`` columns are ``key_<column>``
    (for executemany over :func:`_values` rows)."""
    return (
        update(table)
        .where(*(table.c[name] == bindparam(f"key_{name}") for name in key))
        .values({name: bindparam(name) for name in fields})
    )


def _values(row: Any, fields: Sequence[str], key: Sequence[str] = ()) -> dict[str, Any]:
    """``row``'s ``fields`` as statement parameters, and its ``key`` as ``key_<column>``."""
    values = {name: getattr(row, name) for name in fields}
    for name in key:
        values[f"key_{name}"] = getattr(row, name)
    return values


_JOBS = cast(Table, Job.__table__)
# A job's UPDATE by id: it sets the columns it is executed with (Bulk compiles one per set).
_UPDATE_JOB = Bulk(update(_JOBS).where(_JOBS.c.id == bindparam("key_id")))


_UPDATE_SLOT = Bulk(_update_by_key(_SLOTS, _SLOT_KEY, _SLOT_FIELDS))
_INSERT_SLOTS = Bulk(_SLOTS.insert())
_INSERT_FLIPS = Bulk(_FLIPS.insert())
_INSERT_KEYS = Bulk(_EVENT_KEYS.insert())
_INSERT_ROLLUPS = Bulk(ROLLUPS.insert())

# A run's row as write_pending inserts it: every column but the id, the run key first; for a
# column a new run was not given, its default (``new_row`` sets the ones that have to be set).
_RUNS = cast(Table, Run.__table__)
_RUN_KEY = ("job_id", "run_id")
_RUN_PROPS = sorted(
    (prop for prop in inspect(Run).column_attrs if prop.key != "id"),
    key=lambda prop: _RUN_KEY.index(prop.key) if prop.key in _RUN_KEY else len(_RUN_KEY),
)
_RUN_COLUMNS = tuple(prop.columns[0].key for prop in _RUN_PROPS)
_RUN_DEFAULTS = {
    prop.key: default.arg if (default := prop.columns[0].default) is not None else None
    for prop in _RUN_PROPS
}
_RUN_VALUES = itemgetter(*_RUN_DEFAULTS)  # a run's values by attribute, in _RUN_COLUMNS order
_UPDATE_RUN = Bulk(_update_by_key(_RUNS, _RUN_KEY, _RUN_COLUMNS[len(_RUN_KEY) :]))
_INSERT_RUNS = Bulk(_RUNS.insert())


def _run_row(run: Run) -> tuple[Any, ...]:
    """A new run's row; the columns it was not given take their defaults, on the run too
    (as after an ORM insert), so :data:`_RUN_VALUES` reads it again as it changes."""
    values = run.__dict__
    for name in _RUN_DEFAULTS.keys() - values.keys():
        values[name] = _RUN_DEFAULTS[name]
    row: tuple[Any, ...] = _RUN_VALUES(values)
    return row


# An UPDATE's row: the values of the columns after the key, then the key as key_<column>.
_RUN_UPDATE_KEYS = _RUN_COLUMNS[len(_RUN_KEY) :] + tuple(f"key_{name}" for name in _RUN_KEY)


_UPDATE_ROLLUP = Bulk(_update_by_key(ROLLUPS, _ROLLUP_KEY, _COUNTERS))

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
# Executed with a new HourRollup's values (zero counts), so its defaults are the only ones.
_NEW_ROLLUP_SQLITE = sqlite.insert(ROLLUPS).on_conflict_do_nothing()
_NEW_ROLLUP_PG = postgresql.insert(ROLLUPS).on_conflict_do_nothing()
