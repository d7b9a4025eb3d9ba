"""Retention: keep the store bounded.

The leader runs :meth:`Retention.prune` every :data:`EVERY` seconds:

- finished runs that started more than ``run_retention`` ago, and idempotency/log rows
  (``events``) received that long ago, are deleted in batches of :data:`BATCH` rows, one writer
  transaction per batch, so a large backlog never holds locks for long; runs still in flight
  are kept (they drive the running gauges and time out as usual); judged slots (filled or
  missed) older than the same age go too, since their counts live on in the job's counters and
  the hourly rollups; rollups and flips are kept, so statistics and state history outlive the
  raw runs; maintenance windows created through the API that closed that long ago go too;
- jobs that only clients or the API declared (not in the configuration file, not removed from
  it) with no event for ``job_ttl`` are deleted with their history. The delete re-checks the
  condition in its own ``WHERE``, so a job that just received an event on another replica stays.

Every replica measures the store (:meth:`Retention.measure`) for ``jobpulse_store_size_bytes``:
SQLite ``page_count * page_size``, PostgreSQL ``pg_database_size``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from sqlalchemy import ColumnElement, delete, func, select, text
from sqlalchemy.orm import InstrumentedAttribute

from ..domain.clock import Clock
from ..domain.tables import Base, EventKey, Job, MaintenanceRow, Run, Slot
from .database import Store

if TYPE_CHECKING:
    from .tx import Tx

__all__ = ["BATCH", "EVERY", "Pruned", "Retention"]

log = logging.getLogger("jobpulse.sidecar.retention")
BATCH = 1000
EVERY = 300.0
T = TypeVar("T")


class _Settings(Protocol):
    @property
    def run_retention(self) -> float: ...
    @property
    def job_ttl(self) -> float: ...


class _Writer(Protocol):
    def run_sync(self, work: Callable[[Tx], T], timeout: float | None = 60) -> T: ...


class _Cache(Protocol):
    def invalidate(self) -> None: ...


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class _Metrics(Protocol):
    @property
    def store_size(self) -> _Gauge: ...


class Host(Protocol):
    """What retention needs of the sidecar that runs it (the service's ``Sidecar``): named by
    shape, so the store does not import the layer above it."""

    @property
    def clock(self) -> Clock: ...
    @property
    def settings(self) -> _Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def writer(self) -> _Writer: ...
    @property
    def cache(self) -> _Cache: ...
    @property
    def metrics(self) -> _Metrics: ...


@dataclass(frozen=True, slots=True)
class Pruned:
    runs: int = 0
    events: int = 0
    jobs: int = 0
    slots: int = 0


class Retention:
    def __init__(self, sidecar: Host) -> None:
        self._sidecar = sidecar
        self._next: float | None = None

    def due(self, now: float) -> bool:
        """Whether a pass is due; the first one comes at start-up."""
        if self._next is not None and now < self._next:
            return False
        self._next = now + EVERY
        return True

    def prune(self, now: float | None = None) -> Pruned:
        sc = self._sidecar
        at = sc.clock.now() if now is None else now
        run_cutoff = at - sc.settings.run_retention
        job_cutoff = at - sc.settings.job_ttl
        runs = self._batches(
            Run.id, Run.started_at < run_cutoff, Run.outcome != "running", table=Run
        )
        events = self._batches(EventKey.id, EventKey.received_at < run_cutoff, table=EventKey)
        slots = self._batches(Slot.id, Slot.slot < run_cutoff, table=Slot)
        closed = MaintenanceRow.ends_at < run_cutoff
        self._batches(MaintenanceRow.id, closed, table=MaintenanceRow)
        silent = (
            Job.in_file.is_(False),
            Job.removed.is_(False),
            func.coalesce(Job.last_event_at, Job.created_at) < job_cutoff,
        )
        jobs = self._batches(Job.id, *silent, table=Job)
        if jobs:
            sc.cache.invalidate()
        if runs or events or jobs or slots:
            log.info(
                "retention: pruned %d runs, %d events, %d slots, %d jobs", runs, events, slots, jobs
            )
        return Pruned(runs=runs, events=events, jobs=jobs, slots=slots)

    def _batches(
        self, key: InstrumentedAttribute[int], *where: ColumnElement[bool], table: type[Base]
    ) -> int:
        """Delete rows matching ``where`` in writer transactions of at most BATCH rows."""

        def work(tx: Tx) -> int:
            tx.write_pending()  # what an earlier item of the batch counted is not forgotten
            ids = list(tx.session.scalars(select(key).where(*where).order_by(key).limit(BATCH)))
            if not ids:
                return 0
            # The condition is repeated in the DELETE: a row changed meanwhile is left alone.
            result = tx.session.execute(
                delete(table)
                .where(key.in_(ids), *where)
                .execution_options(synchronize_session=False)
            )
            tx.reset_cache()
            return int(getattr(result, "rowcount", 0) or 0)

        total = 0
        while True:
            done = self._sidecar.writer.run_sync(work)
            total += done
            if done < BATCH:
                return total

    def measure(self) -> int:
        """The store's size in bytes; also sets ``jobpulse_store_size_bytes``."""
        sc = self._sidecar
        with sc.store.engine.connect() as conn:
            if sc.store.is_sqlite:
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
                page_size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
                size = int(pages) * int(page_size)
            else:
                query = text("SELECT pg_database_size(current_database())")
                size = int(conn.execute(query).scalar() or 0)
        sc.metrics.store_size.set(size)
        return size
