"""The sidecar without HTTP: settings, store, writer, engine, configuration and evaluator.

``create_app`` wraps a :class:`Sidecar`; ``jobpulse replay`` drives one with a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobpulse.instrumentation.wire import Event

from .applying import InboxApplier
from .config import FileConfig, load_config
from .domain.clock import Clock, SystemClock
from .domain.engine import Engine, EngineSettings
from .domain.maintenance import Window
from .domain.ratelimit import RateLimiter
from .domain.tables import Job
from .exposition.cache import MetricsCache
from .exposition.selfmetrics import SelfMetrics
from .settings import Settings
from .store.appender import Appender
from .store.applier import Outcome
from .store.database import Store
from .store.inbox import IngestResult, Registry, forget_job, pending_among
from .store.leader import Leadership
from .store.retention import Retention
from .store.tx import Tx
from .store.writer import Writer

__all__ = ["IngestResult", "Sidecar"]

log = logging.getLogger("jobpulse.sidecar")
T = TypeVar("T")
APPLIED_WAIT = 30.0  # ?wait=applied gives up after this long
REPLICA_POLL = 0.1  # how often a PostgreSQL leader looks for other replicas' appends


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
        self.writer = Writer(self.store, on_commit=self._on_commit)
        self.registry = Registry()
        self.appender = Appender(
            self.store,
            self.registry,
            self.clock,
            job_cap=settings.job_cap,
            on_commit=self._on_append,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._applied = asyncio.Event()
        self.ingesting = 0  # ingest requests in flight (counted by the HTTP app)
        self.started_at = self.clock.now()
        self.engine = Engine(
            EngineSettings(
                max_clock_skew=settings.max_clock_skew,
                catchup_cap=settings.catchup_cap,
                job_cap=settings.job_cap,
                log_bytes=settings.log_bytes,
                catchup_delay=settings.catchup_delay,
                abandon_after=settings.abandon_after,
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
        self.applier = InboxApplier(
            store=self.store,
            writer=self.writer,
            engine=self.engine,
            appender=self.appender,
            clock=self.clock,
            metrics=self.metrics,
            ingesting=lambda: self.ingesting,
            on_applied=lambda: self._call_soon(self._signal_applied),
        )

    def _on_commit(self, seconds: float, items: int) -> None:
        self.metrics.store_write.observe(seconds)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.store.migrate()
        self.writer.start()
        self.apply_config(self.file_config or self._read_config())
        self.appender.start()

    def stop(self) -> None:
        self.leadership.release()
        self.appender.stop()
        self.writer.stop()
        self.store.dispose()

    def reload_registry(self) -> None:
        with self.store.engine.connect() as conn:
            self.registry.load(conn)

    def delete_job(self, tx: Tx, name: str) -> bool:
        """Delete a job with its history and the events of it still waiting in the inbox."""
        job = tx.job(name)
        if job is None:
            return False
        tx.session.delete(job)
        forget_job(tx, name)
        tx.session.flush()  # later items of the same batch must not see the job
        tx.reset_cache()
        self.registry.discard(name)
        return True

    def _read_config(self) -> FileConfig:
        return load_config(self.settings.config) if self.settings.config else FileConfig()

    def reload(self) -> dict[str, list[str]]:
        """Re-read the configuration file (SIGHUP, POST /api/v1/config/reload)."""
        return self.apply_config(self._read_config())

    def apply_config(self, cfg: FileConfig) -> dict[str, list[str]]:
        self.file_config = cfg
        windows = tuple(Window.from_spec(spec) for spec in cfg.maintenance)
        windows_changed = windows != self.engine.windows
        self.engine.set_windows(windows)

        def work(tx: Tx) -> dict[str, list[str]]:
            now = self.clock.now()
            report: dict[str, list[str]] = {"added": [], "updated": [], "removed": []}
            if windows_changed:
                self.refresh_jobs(tx, now)
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
        self.reload_registry()
        self._wake.set()
        return report

    def refresh_jobs(self, tx: Tx, now: float, names: Sequence[str] | None = None) -> None:
        """Recompute the derived fields (``in_maintenance``, the next deadline) of the jobs
        named, or of every job, after maintenance windows changed."""
        query = select(Job).where(Job.removed.is_(False))
        if names is not None:
            query = query.where(Job.name.in_(list(names)))
        for job in tx.session.scalars(query):
            self.engine.refresh(tx, job, now)

    async def read(self, fn: Callable[[Sidecar, Session], T]) -> T:
        """Run a read-only query function in a worker thread with its own session."""

        def run() -> T:
            with self.store.session() as session:
                return fn(self, session)

        return await asyncio.to_thread(run)

    # ---------------------------------------------------------------- ingest
    async def ingest(
        self,
        events: Sequence[Event],
        *,
        create: bool = True,
        pair_latest: bool = False,
        check_keys: bool = True,
        wait_applied: bool = False,
    ) -> IngestResult:
        """Append ``events`` to the inbox; the answer is final once they are durable.
        ``wait_applied`` also waits (up to ``APPLIED_WAIT`` seconds) until they are applied, and
        warns in the result if they were not."""
        future = self.appender.submit(
            events, create=create, pair_latest=pair_latest, check_keys=check_keys
        )
        result = await asyncio.wrap_future(future)
        if wait_applied:
            ids = [i for i in result.ids if i is not None]
            if ids and not await self.wait_applied(ids):
                result.warnings.append(
                    f"the events were accepted but not applied within {APPLIED_WAIT:g} s; "
                    "they will be"
                )
        return result

    def ingest_sync(
        self,
        events: Sequence[Event],
        *,
        create: bool = True,
        pair_latest: bool = False,
        now: float | None = None,
    ) -> IngestResult:
        """Append and apply at once (replay, tests): the result carries the runs the events
        went to. ``now`` is their arrival (default: the clock)."""
        result = self.appender.submit(
            events, create=create, pair_latest=pair_latest, at=now
        ).result(60)
        outcomes = self.apply_pending(now)
        for index, row_id in enumerate(result.ids):
            outcome = outcomes.get(row_id) if row_id is not None else None
            if outcome is None:
                continue
            result.run_ids[index] = outcome.run_id
            if outcome.warning:
                result.warnings.append(f"event {index}: {outcome.warning}")
        return result

    async def wait_applied(self, ids: Sequence[int], timeout: float = APPLIED_WAIT) -> bool:
        """Wait until the inbox rows ``ids`` are applied; False after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.is_leader or self._loop is None:
            # This process applies (or no evaluator runs here to leave it to, as in tests): do
            # it now rather than wait for the evaluator's next pass.
            await asyncio.to_thread(self.apply_pending)
        while True:
            signal = self._applied
            left = await asyncio.to_thread(self._pending_among, ids)
            if not left:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            # Woken when this process applies; polled when another replica leads.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(remaining, 0.25))

    def _pending_among(self, ids: Sequence[int]) -> int:
        with self.store.engine.connect() as conn:
            return pending_among(conn, ids)

    def apply_pending(
        self, now: float | None = None, *, yield_to_appends: bool = False
    ) -> dict[int, Outcome]:
        """Apply what waits in the inbox (see :class:`InboxApplier`)."""
        return self.applier.apply_pending(now, yield_to_appends=yield_to_appends)

    def tick_sync(self, now: float | None = None, *, yield_to_appends: bool = False) -> int:
        """Apply the inbox, then evaluate every job whose deadline has come; returns how many
        were evaluated."""
        count, at = self.applier.tick(now, yield_to_appends=yield_to_appends)
        self.evaluator_last_run = at
        self.metrics.evaluator_last_run.set(at)
        return count

    def update_inbox_metrics(self) -> tuple[int, float]:
        """Set the inbox gauges; returns (pending events, age of the oldest in seconds)."""
        return self.applier.update_inbox_metrics()

    def _signal_applied(self) -> None:
        signal, self._applied = self._applied, asyncio.Event()
        signal.set()

    def _call_soon(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def _on_append(self, seconds: float, requests: int) -> None:
        self.metrics.inbox_append.observe(seconds)
        self._call_soon(self._wake.set)

    def next_deadline(self) -> float | None:
        with self.store.session() as session:
            return session.scalar(
                select(Job.next_deadline)
                .where(Job.next_deadline.is_not(None))
                .order_by(Job.next_deadline)
                .limit(1)
            )

    async def run_evaluator(self, *, max_sleep: float = 1.0) -> None:
        """Apply the inbox and tick, woken by every append and at every deadline (at least
        every ``max_sleep`` seconds), while this replica leads (see ``leader.py``); every few
        minutes the leader also prunes the store."""
        self._loop = asyncio.get_running_loop()
        while True:
            nxt = None
            self._wake.clear()
            try:
                await self._lead()
                if self.is_leader:
                    await asyncio.to_thread(partial(self.tick_sync, yield_to_appends=True))
                    nxt = await asyncio.to_thread(self.next_deadline)
                await asyncio.to_thread(self.update_inbox_metrics)
                if self.retention.due(self.clock.now()):
                    if self.is_leader:
                        await asyncio.to_thread(self.retention.prune)
                    await asyncio.to_thread(self.retention.measure)
                    await asyncio.to_thread(self.reload_registry)
            except Exception:
                log.exception("evaluator pass failed; retrying")
            now = self.clock.now()
            sleep = max_sleep if nxt is None else min(max(nxt - now, 0.0), max_sleep)
            if self.is_leader and not self.store.is_sqlite:
                # Other replicas' appends do not wake this one: look at the inbox often.
                sleep = min(sleep, REPLICA_POLL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)

    async def _lead(self) -> None:
        leader = await asyncio.to_thread(self.leadership.check)
        if self.is_leader and not leader:
            self.metrics.evaluator_last_run.set(0)
        self.is_leader = leader
        self.metrics.leader.set(1 if leader else 0)
