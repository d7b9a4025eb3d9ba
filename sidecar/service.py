"""The sidecar without HTTP: settings, store, writer, engine, configuration and evaluator.

``create_app`` wraps a :class:`Sidecar`; ``jobpulse replay`` drives one with a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobpulse.instrumentation.wire import Event

from .clock import Clock, SystemClock
from .config import FileConfig, load_config
from .engine import Applied, Engine, EngineSettings, Rejected
from .exposition import MetricsCache
from .leader import Leadership
from .ratelimit import RateLimiter
from .retention import Retention
from .selfmetrics import SelfMetrics
from .settings import Settings
from .store import Store, Tx
from .tables import Job
from .writer import Writer

__all__ = ["IngestResult", "Sidecar"]

log = logging.getLogger("jobpulse.sidecar")
T = TypeVar("T")
DUE_BATCH = 500


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)
    run_ids: list[str | None] = field(default_factory=list)


class Sidecar:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        file_config: FileConfig | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.store = Store(settings.store)
        self.metrics = SelfMetrics()
        self.writer = Writer(self.store, on_commit=self._on_commit, prefetch=self._prefetch)
        self.started_at = self.clock.now()
        self.engine = Engine(
            EngineSettings(
                max_clock_skew=settings.max_clock_skew,
                catchup_cap=settings.catchup_cap,
                job_cap=settings.job_cap,
                log_bytes=settings.log_bytes,
                catchup_delay=settings.catchup_delay,
            ),
            judge_from=self.started_at + settings.catchup_delay,
        )
        self.file_config = file_config
        self.cache = MetricsCache(self)
        self.leadership = Leadership(self.store)
        self.is_leader = self.leadership.is_leader  # PostgreSQL: set by run_evaluator
        self.retention = Retention(self)
        self.limiter = RateLimiter(settings.rate_limit)
        self.evaluator_last_run: float | None = None
        self._wake = asyncio.Event()

    def _on_commit(self, seconds: float, items: int) -> None:
        self.metrics.store_write.observe(seconds)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.store.migrate()
        self.writer.start()
        self.apply_config(self.file_config or self._read_config())

    def stop(self) -> None:
        self.leadership.release()
        self.writer.stop()
        self.store.dispose()

    def _read_config(self) -> FileConfig:
        return load_config(self.settings.config) if self.settings.config else FileConfig()

    def reload(self) -> dict[str, list[str]]:
        """Re-read the configuration file (SIGHUP, POST /api/v1/config/reload)."""
        return self.apply_config(self._read_config())

    def apply_config(self, cfg: FileConfig) -> dict[str, list[str]]:
        self.file_config = cfg

        def work(tx: Tx) -> dict[str, list[str]]:
            now = self.clock.now()
            report: dict[str, list[str]] = {"added": [], "updated": [], "removed": []}
            for name, fields in cfg.jobs.items():
                job = tx.job(name)
                if job is None:
                    self.engine.create_job(tx, name, now, file_fields=fields)
                    report["added"].append(name)
                    continue
                if job.removed:
                    job.removed = False
                    self.engine._restart_cursor(job, self.engine.config(job), now)
                if job.file_fields != fields or not job.in_file:
                    self.engine.reconfigure(tx, job, now, file_fields=fields)
                    report["updated"].append(name)
            for job in tx.session.scalars(select(Job).where(Job.in_file.is_(True))):
                if job.name not in cfg.jobs and not job.removed:
                    # Stops being evaluated; keeps its last configuration and its history.
                    job.removed = True
                    job.changed_at = now
                    self.engine.refresh(tx, job, now)
                    report["removed"].append(job.name)
            return report

        report = self.writer.run_sync(work)
        self._wake.set()
        return report

    async def read(self, fn: Callable[[Sidecar, Session], T]) -> T:
        """Run a read-only query function in a worker thread with its own session."""

        def run() -> T:
            with self.store.session() as session:
                return fn(self, session)

        return await asyncio.to_thread(run)

    # ---------------------------------------------------------------- ingest
    def ingest_sync(
        self,
        events: Sequence[Event],
        *,
        create: bool = True,
        pair_latest: bool = False,
        now: float | None = None,
    ) -> IngestResult:
        result: IngestResult = self.writer.run_sync(
            self._ingest_work(events, create, pair_latest, now)
        )
        return result

    async def ingest(
        self, events: Sequence[Event], *, create: bool = True, pair_latest: bool = False
    ) -> IngestResult:
        return await self.writer.run(self._ingest_work(events, create, pair_latest, None))

    def _ingest_work(
        self, events: Sequence[Event], create: bool, pair_latest: bool, at: float | None
    ) -> _IngestWork:
        return _IngestWork(self, events, create, pair_latest, at)

    def _prefetch(self, tx: Tx, works: Sequence[Callable[[Tx], Any]]) -> None:
        """Before a batch of requests: load what all their events will read at once."""
        events = [ev for work in works if isinstance(work, _IngestWork) for ev in work.events]
        if events:
            self.engine.prefetch(tx, events)

    # ---------------------------------------------------------------- evaluator
    def tick_sync(self, now: float | None = None) -> int:
        """Evaluate every job whose deadline has come; returns how many were evaluated."""
        at = self.clock.now() if now is None else now

        def work(tx: Tx) -> int:
            total = 0
            while True:
                due = tx.due_jobs(at, DUE_BATCH)
                for job in due:
                    self.engine.tick(tx, job, at)
                total += len(due)
                if len(due) < DUE_BATCH:
                    return total
                tx.session.flush()

        count = self.writer.run_sync(work)
        self.evaluator_last_run = at
        self.metrics.evaluator_last_run.set(at)
        return count

    def next_deadline(self) -> float | None:
        with self.store.session() as session:
            return session.scalar(
                select(Job.next_deadline)
                .where(Job.next_deadline.is_not(None))
                .order_by(Job.next_deadline)
                .limit(1)
            )

    async def run_evaluator(self, *, max_sleep: float = 1.0) -> None:
        """Tick at every deadline (and at least every ``max_sleep`` seconds) while this replica
        leads (see ``leader.py``); every few minutes the leader also prunes the store."""
        while True:
            nxt = None
            try:
                await self._lead()
                if self.is_leader:
                    await asyncio.to_thread(self.tick_sync)
                    nxt = await asyncio.to_thread(self.next_deadline)
                if self.retention.due(self.clock.now()):
                    if self.is_leader:
                        await asyncio.to_thread(self.retention.prune)
                    await asyncio.to_thread(self.retention.measure)
            except Exception:
                log.exception("evaluator pass failed; retrying")
            now = self.clock.now()
            sleep = max_sleep if nxt is None else min(max(nxt - now, 0.0), max_sleep)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)

    async def _lead(self) -> None:
        leader = await asyncio.to_thread(self.leadership.check)
        if self.is_leader and not leader:
            self.metrics.evaluator_last_run.set(0)
        self.is_leader = leader
        self.metrics.leader.set(1 if leader else 0)


class _IngestWork:
    """A request's events as one writer item (see ``Sidecar._prefetch``)."""

    __slots__ = ("at", "create", "events", "pair_latest", "sidecar")

    def __init__(
        self,
        sidecar: Sidecar,
        events: Sequence[Event],
        create: bool,
        pair_latest: bool,
        at: float | None,
    ) -> None:
        self.sidecar = sidecar
        self.events = events
        self.create = create
        self.pair_latest = pair_latest
        self.at = at

    def __call__(self, tx: Tx) -> IngestResult:
        engine = self.sidecar.engine
        now = self.sidecar.clock.now() if self.at is None else self.at
        result = IngestResult()
        if len(self.events) > 1:
            engine.prefetch(tx, self.events)
        for index, ev in enumerate(self.events):
            # The engine rejects an event before writing anything for it, so events need no
            # savepoint of their own.
            try:
                applied: Applied = engine.apply(
                    tx, ev, now, create=self.create, pair_latest=self.pair_latest
                )
            except Rejected as exc:
                result.rejected.append(
                    {"index": index, "field": exc.field, "reason": exc.reason, "code": exc.code}
                )
                result.run_ids.append(None)
                continue
            result.run_ids.append(applied.run_id)
            if applied.duplicate:
                result.duplicates += 1
                continue
            result.accepted += 1
            result.by_type[ev.type] = result.by_type.get(ev.type, 0) + 1
            if applied.warning:
                result.warnings.append(f"event {index}: {applied.warning}")
        return result
