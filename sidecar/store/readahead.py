"""Read-ahead for a :class:`~jobpulse.sidecar.store.tx.Tx`: what a batch of events will read,
in a few statements instead of several per event.

The loaders only fill the transaction's caches; every read works without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from typing import TypeVar, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from ..domain.rollup import HourRollup, Stats, hour_of, stats_from_rows
from ..domain.tables import EventKey, Job, JobUpstream, Rollup, Run, Slot

__all__ = ["ROLLUPS", "ROLLUP_FIELDS", "SELECT_ROLLUPS", "ReadAhead"]

ROLLUPS = cast(Table, Rollup.__table__)
ROLLUP_FIELDS = tuple(field.name for field in fields(HourRollup))
# A rollup row as the engine counts into it (a plain HourRollup, not an ORM row).
SELECT_ROLLUPS = select(*(ROLLUPS.c[name] for name in ROLLUP_FIELDS))

T = TypeVar("T")
_CHUNK = 500  # ids per IN (...) list


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


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

    def load_jobs(self, names: Iterable[str]) -> None:
        """Jobs by name (locked on PostgreSQL, in name order)."""
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
            query = SELECT_ROLLUPS.where(
                ROLLUPS.c.job_id.in_({job_id for job_id, _ in chunk}),
                ROLLUPS.c.hour.in_({hour for _, hour in chunk}),
            )
            with self.session.no_autoflush:
                for row in self.session.execute(query):
                    roll = HourRollup(*row)
                    self._rollups.setdefault((roll.job_id, roll.hour), roll)
            # Known to be absent: :meth:`Tx.rollup` starts these from zero, no statement.
            self._absent_rollups.update(key for key in chunk if key not in self._rollups)

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
            query = SELECT_ROLLUPS.where(ROLLUPS.c.job_id.in_(chunk), ROLLUPS.c.hour >= lo)
            with self.session.no_autoflush:
                for row in self.session.execute(query):
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
            query = (
                select(JobUpstream.upstream, Job.name)
                .join(Job, Job.id == JobUpstream.job_id)
                .where(JobUpstream.upstream.in_(chunk))
                .order_by(Job.name)
            )
            with self.session.no_autoflush:
                for upstream, name in self.session.execute(query):
                    found[upstream].append(name)
            self._downstream.update(found)
            self.load_jobs(name for names in found.values() for name in names)
