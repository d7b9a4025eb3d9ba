"""Read-ahead for a :class:`~jobpulse.sidecar.store.tx.Tx`: what a batch of events will read,
in a few statements instead of several per event.

The loaders only fill the transaction's caches; every read works without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from typing import TypeVar, cast

from sqlalchemy import BindParameter, Table, bindparam, select
from sqlalchemy.orm import Session

from ..domain.rollup import HourRollup, Stats, hour_of, stats_from_rows
from ..domain.tables import RUNNING, EventKey, Job, JobUpstream, Rollup, Run, Slot
from .pairs import MAX_PAIRS, PairsQuery, pairs_args, pairs_sql

__all__ = ["ROLLUPS", "ROLLUP_FIELDS", "SELECT_ROLLUPS", "ReadAhead"]

ROLLUPS = cast(Table, Rollup.__table__)
ROLLUP_FIELDS = tuple(field.name for field in fields(HourRollup))
# A rollup row as the engine counts into it (a plain HourRollup, not an ORM row).
SELECT_ROLLUPS = select(*(ROLLUPS.c[name] for name in ROLLUP_FIELDS))

T = TypeVar("T")
_CHUNK = 500  # ids (or pairs) per statement

# The loaders' statements, built once with expanding parameters: an IN list of literal values
# would be built, coerced value by value and given a cache key anew for every batch applied.
_IDS: BindParameter[int] = bindparam("ids", expanding=True)
_NAMES: BindParameter[str] = bindparam("names", expanding=True)
_HOURS: BindParameter[int] = bindparam("hours", expanding=True)
# Sorted by name: PostgreSQL replicas lock a batch's jobs in one order.
_JOBS = select(Job).where(Job.name.in_(_NAMES)).order_by(Job.name)
_JOBS_LOCKED = _JOBS.with_for_update()
_RUNNING = select(Run).where(Run.job_id.in_(_IDS), RUNNING)
# The ids of the stored runs among (job id, run id) pairs, one index probe each (see pairs.py).
_RUN_IDS = PairsQuery(
    names="job_id, run_id",
    columns="r.id",
    lookups=((Run.__tablename__, "r", "r.job_id = k.job_id AND r.run_id = k.run_id"),),
)
_RUNS_BY_ID = select(Run).where(Run.id.in_(_IDS))
_ID_TEXT = ("integer", "text")  # the SQL types of (job id, run id) pairs
_SLOTS = select(Slot).where(
    Slot.job_id.in_(_IDS), Slot.slot >= bindparam("lo"), Slot.slot <= bindparam("hi")
)
_ROLLUPS_AT = SELECT_ROLLUPS.where(ROLLUPS.c.job_id.in_(_IDS), ROLLUPS.c.hour.in_(_HOURS))
_ROLLUPS_SINCE = SELECT_ROLLUPS.where(ROLLUPS.c.job_id.in_(_IDS), ROLLUPS.c.hour >= bindparam("lo"))
_EVENT_KEYS = PairsQuery(
    names="job_id, run_id",
    columns="e.job_id, e.run_id, e.type, e.key_ts",
    lookups=((EventKey.__tablename__, "e", "e.job_id = k.job_id AND e.run_id = k.run_id"),),
)
_DOWNSTREAMS = (
    select(JobUpstream.upstream, Job.name)
    .join(Job, Job.id == JobUpstream.job_id)
    .where(JobUpstream.upstream.in_(_NAMES))
    .order_by(Job.name)
)


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ReadAhead:
    """The caches a transaction keeps (set up by :class:`~jobpulse.sidecar.store.tx.Tx`) and
    the bulk loads that fill them."""

    session: Session
    locking: bool
    _jobs: dict[str, Job | None]
    _rollups: dict[tuple[int, int], HourRollup]
    _absent_rollups: set[tuple[int, int]]
    _runs: dict[tuple[int, str], Run | None]
    _running: dict[int, list[Run]]
    _slot_cover: dict[int, tuple[float, float]]
    _stored_slots: dict[int, dict[float, Slot]]
    _keys: dict[tuple[int, str, str, float], bool]
    _windows: dict[int, tuple[int, Stats]]
    _downstream: dict[str, list[str]]

    def _covered(self, job_id: int, lo: float, hi: float) -> dict[float, Slot] | None:
        cover = self._slot_cover.get(job_id)
        if cover is None or not cover[0] <= lo <= hi <= cover[1]:
            return None
        return self._stored_slots[job_id]

    def _known(self, run: Run) -> Run:
        """The run this transaction already holds for ``run``'s row, if any, else ``run``, now
        held: a run added in the transaction and written is read back from the store as
        another object, and the engine must keep changing the one it has."""
        key = (run.job_id, run.run_id)
        held = self._runs.get(key)
        if held is None:
            self._runs[key] = held = run
        return held

    def load_jobs(self, names: Iterable[str]) -> None:
        """Jobs by name (locked on PostgreSQL, in name order)."""
        wanted = sorted(set(names) - self._jobs.keys())
        query = _JOBS_LOCKED if self.locking else _JOBS
        for chunk in _chunks(wanted):
            with self.session.no_autoflush:
                rows = self.session.scalars(query, {"names": chunk})
                found = {job.name: job for job in rows}
            for name in chunk:
                self._jobs[name] = found.get(name)

    def load_runs(self, keys: Iterable[tuple[int, str]]) -> None:
        """Runs by (job id, run id), and every running run of those jobs."""
        keys = set(keys)
        job_ids = {job_id for job_id, _ in keys}
        with self.session.no_autoflush:
            for chunk in _chunks(sorted(job_ids - self._running.keys())):
                running: dict[int, list[Run]] = {job_id: [] for job_id in chunk}
                for run in self.session.scalars(_RUNNING, {"ids": chunk}):
                    running[run.job_id].append(self._known(run))
                self._running.update(running)
            for part in _chunks(sorted(keys - self._runs.keys()), MAX_PAIRS):
                # Which pairs are stored runs, at the driver (see pairs_sql; a batch's runs are
                # mostly new), then those runs as the session's objects, by id.
                pg = self.locking  # PostgreSQL
                query = pairs_sql(_RUN_IDS, len(part), postgresql=pg, types=_ID_TEXT)
                args = pairs_args(part, postgresql=pg)
                ids = {row[0] for row in self.session.connection().exec_driver_sql(query, args)}
                found: dict[tuple[int, str], Run] = {}
                if ids:
                    rows = self.session.scalars(_RUNS_BY_ID, {"ids": sorted(ids)})
                    found = {(run.job_id, run.run_id): run for run in rows}
                for key in part:  # not held yet (the keys left), so nothing is replaced
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
            with self.session.no_autoflush:
                for row in self.session.scalars(_SLOTS, {"ids": chunk, "lo": lo, "hi": hi}):
                    stored[row.job_id][row.slot] = row
            for job_id in chunk:
                # Slots this transaction added are in _added_slots; reads merge them in.
                self._stored_slots[job_id] = stored[job_id]
                self._slot_cover[job_id] = (lo, hi)

    def load_rollups(self, keys: Iterable[tuple[int, float]]) -> None:
        wanted = sorted({(job_id, hour_of(at)) for job_id, at in keys} - self._rollups.keys())
        for chunk in _chunks(wanted):
            params = {
                "ids": list({job_id for job_id, _ in chunk}),
                "hours": list({hour for _, hour in chunk}),
            }
            with self.session.no_autoflush:
                for row in self.session.execute(_ROLLUPS_AT, params):
                    roll = HourRollup(*row)
                    self._rollups.setdefault((roll.job_id, roll.hour), roll)
            # Known to be absent: :meth:`Tx.rollup` starts these from zero, no statement.
            self._absent_rollups.update(key for key in chunk if key not in self._rollups)

    def load_event_keys(self, keys: Iterable[tuple[int, str, str, float]]) -> None:
        wanted = sorted(set(keys) - self._keys.keys())
        for chunk in _chunks(wanted, MAX_PAIRS):  # at most as many pairs as keys
            pairs = sorted({key[:2] for key in chunk})
            pg = self.locking  # PostgreSQL
            # At the driver, as the appender's duplicate check (see pairs_sql): plain rows.
            query = pairs_sql(_EVENT_KEYS, len(pairs), postgresql=pg, types=_ID_TEXT)
            rows = self.session.connection().exec_driver_sql(
                query, pairs_args(pairs, postgresql=pg)
            )
            stored = {(job_id, run_id, etype, float(kts)) for job_id, run_id, etype, kts in rows}
            for key in chunk:
                self._keys[key] = key in stored

    def load_duration_windows(self, windows: dict[int, int]) -> None:
        """Each job's rollups from its first hour on (one statement for all the jobs), summed
        into the durations :meth:`Tx.duration_window` returns; this transaction's own rollup
        rows are included."""
        todo = {
            job_id: since
            for job_id, since in windows.items()
            if job_id not in self._windows or self._windows[job_id][0] != since
        }
        if not todo:
            return
        lo = min(todo.values())
        rows: dict[int, dict[int, HourRollup]] = {job_id: {} for job_id in todo}
        for chunk in _chunks(sorted(todo)):
            with self.session.no_autoflush:
                for row in self.session.execute(_ROLLUPS_SINCE, {"ids": chunk, "lo": lo}):
                    roll = HourRollup(*row)
                    rows[roll.job_id][roll.hour] = self._rollups.setdefault(
                        (roll.job_id, roll.hour), roll
                    )
        for (job_id, hour), roll in self._rollups.items():
            if job_id in todo:
                rows[job_id][hour] = roll
        for job_id, since in todo.items():
            kept = [roll for hour, roll in rows[job_id].items() if hour >= since]
            self._windows[job_id] = (since, stats_from_rows(kept))

    def load_downstreams(self, names: Iterable[str]) -> None:
        """For each job name, the names of the jobs that run after it (one statement for all
        of them; most jobs have none, and that is cached too)."""
        wanted = sorted(set(names) - self._downstream.keys())
        for chunk in _chunks(wanted):
            found: dict[str, list[str]] = {name: [] for name in chunk}
            with self.session.no_autoflush:
                for upstream, name in self.session.execute(_DOWNSTREAMS, {"names": chunk}):
                    found[upstream].append(name)
            self._downstream.update(found)
            self.load_jobs(name for names in found.values() for name in names)
