"""The sidecar without HTTP: settings, store, writer, engine, configuration and evaluator.

``create_app`` wraps a :class:`Sidecar`; ``jobpulse replay`` drives one with a manual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobpulse.instrumentation.wire import Event

from .config import FileConfig, load_config
from .domain.clock import Clock, SystemClock
from .domain.engine import Engine, EngineSettings
from .domain.ratelimit import RateLimiter
from .domain.tables import Job
from .exposition.cache import MetricsCache
from .exposition.selfmetrics import SelfMetrics
from .settings import Settings
from .store.appender import Appender
from .store.applier import Outcome, apply_rows, held_order
from .store.database import Store
from .store.inbox import (
    APPLY_BATCH,
    IngestResult,
    Registry,
    drop_row,
    forget_job,
    inbox_lag,
    lock_for_pass,
    pending_among,
    row_ids,
)
from .store.leader import Leadership
from .store.retention import Retention
from .store.tx import Tx
from .store.writer import StoreUnavailable, Writer

__all__ = ["IngestResult", "Sidecar"]

log = logging.getLogger("jobpulse.sidecar")
T = TypeVar("T")
DUE_BATCH = 500
APPLIED_WAIT = 30.0  # ?wait=applied gives up after this long
REPLICA_POLL = 0.1  # how often a PostgreSQL leader looks for other replicas' appends
TICK_PATIENCE = (
    10.0  # seconds an evaluator pass applies the inbox outside the lock before draining it
)
YIELD_LAG = 2.5  # the applier gives way to appends only while its backlog is younger than this
BUSY = 0.05  # appends this recent mean a burst is on


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
        # Inbox rows of every: jobs held back during the catch-up delay (see inbox.apply_rows).
        self._held: set[int] = set()
        self.ingesting = 0  # ingest requests in flight (counted by the HTTP app)
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
        self.reload_registry()
        self._wake.set()
        return report

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
        """Apply what waits in the inbox, in transactions of ``APPLY_BATCH`` events.

        ``yield_to_appends`` (the evaluator's background passes): between batches, let waiting
        appends go first while the backlog is younger than ``YIELD_LAG``, so a burst is
        acknowledged at the speed of the inbox and applied just behind it."""
        at = self.clock.now() if now is None else now
        outcomes: dict[int, Outcome] = {}
        if self._held and at >= self.engine.judge_from:
            # The catch-up delay is over: what was held back goes first, in ts order.
            order = self.writer.run_sync(partial(held_order, ids=set(self._held)))
            for i in range(0, len(order), APPLY_BATCH):
                chunk = order[i : i + APPLY_BATCH]
                done, _, _ = self._apply_batch(after=0, now=at, only=chunk)
                outcomes.update(done)
            self._held.clear()
        after = 0
        newest = 0.0  # the arrival of the newest event applied in this pass
        while True:
            if yield_to_appends:
                self._give_way(newest or self._oldest_waiting())
            done, after, read = self._apply_batch(after=after, now=at)
            outcomes.update(done)
            if done:
                newest = max(newest, *(o.arrived_at for o in done.values()))
            if read < APPLY_BATCH:
                return outcomes

    def _oldest_waiting(self) -> float:
        with self.store.engine.connect() as conn:
            _, oldest = inbox_lag(conn)
        return self.clock.now() if oldest is None else oldest

    def _give_way(self, oldest_waiting: float) -> None:
        """While appends keep coming (a request in flight, or an append in the last ``BUSY``
        seconds), let them have the process until the oldest unapplied event (about
        ``oldest_waiting``: events are applied in order) is ``YIELD_LAG`` old: a burst is
        acknowledged at the speed of the inbox and applied just behind it. Past that lag the
        applier takes its turn."""
        waited = 0.0
        while (
            waited < YIELD_LAG
            and self.clock.now() - oldest_waiting < YIELD_LAG
            and (self.ingesting or time.monotonic() - self.appender.last_commit < BUSY)
        ):
            time.sleep(0.005)
            waited += 0.005

    def _apply_batch(
        self, *, after: int, now: float, only: Sequence[int] | None = None
    ) -> tuple[dict[int, Outcome], int, int]:
        def work(tx: Tx) -> tuple[dict[int, Outcome], int, int]:
            return apply_rows(tx, self.engine, now=now, after=after, held=self._held, only=only)

        try:
            done, last, read = self.writer.run_sync(work)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("applying inbox events failed; applying them one at a time")
            done, last, read = self._apply_one_by_one(after, now)
        if done:
            self._call_soon(self._signal_applied)
        return done, last, read

    def _apply_one_by_one(self, after: int, now: float) -> tuple[dict[int, Outcome], int, int]:
        ids = self.writer.run_sync(lambda tx: row_ids(tx, after=after, limit=APPLY_BATCH))
        outcomes: dict[int, Outcome] = {}
        for row_id in ids:
            try:
                done, _, _ = self.writer.run_sync(partial(self._apply_one, row_id, now))
                outcomes.update(done)
            except StoreUnavailable:
                raise
            except Exception:
                body = self.writer.run_sync(partial(drop_row, row_id=row_id))
                log.exception("inbox event %d cannot be applied and was dropped: %s", row_id, body)
                self.metrics.rejected.labels("apply_failed").inc()
        return outcomes, ids[-1] if ids else after, len(ids)

    def _apply_one(self, row_id: int, now: float, tx: Tx) -> tuple[dict[int, Outcome], int, int]:
        return apply_rows(tx, self.engine, now=now, limit=1, after=row_id - 1, held=self._held)

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

    def update_inbox_metrics(self) -> tuple[int, float]:
        """Set the inbox gauges; returns (pending events, age of the oldest in seconds)."""
        with self.store.engine.connect() as conn:
            pending, oldest = inbox_lag(conn)
        lag = max(self.clock.now() - oldest, 0.0) if oldest is not None else 0.0
        self.metrics.inbox_pending.set(pending)
        self.metrics.inbox_lag.set(lag)
        return pending, lag

    # ---------------------------------------------------------------- evaluator
    def tick_sync(self, now: float | None = None, *, yield_to_appends: bool = False) -> int:
        """Apply the inbox, then evaluate every job whose deadline has come; returns how many
        jobs were evaluated. The pass reads the inbox and ``now`` holding the inbox lock (see
        ``inbox.py``), so every event that arrived before ``now`` is applied before any slot
        is judged at ``now``."""
        started = time.monotonic()
        while True:
            self.apply_pending(now, yield_to_appends=yield_to_appends)
            # Past TICK_PATIENCE the pass drains whatever keeps arriving, holding appends back:
            # under a sustained overload ingest slows to the applier's pace rather than the
            # evaluator never judging.
            drain = time.monotonic() - started > TICK_PATIENCE
            result = self.writer.run_sync(partial(self._tick, now, drain))
            if result is not None:
                count, at = result
                self.evaluator_last_run = at
                self.metrics.evaluator_last_run.set(at)
                return count

    def _tick(self, now: float | None, drain: bool, tx: Tx) -> tuple[int, float] | None:
        conn = tx.session.connection()  # SQLite: BEGIN IMMEDIATE, the write lock
        if tx.locking:
            lock_for_pass(conn, exclusive=True)
        at = self.clock.now() if now is None else now
        after, read = 0, APPLY_BATCH
        while read == APPLY_BATCH:  # what arrived since apply_pending
            done, after, read = apply_rows(tx, self.engine, now=at, after=after, held=self._held)
            if read == APPLY_BATCH and done and not drain:
                return None  # more keeps arriving: apply it outside the lock first
        total = 0
        while True:
            due = tx.due_jobs(at, DUE_BATCH)
            for job in due:
                self.engine.tick(tx, job, at)
            total += len(due)
            if len(due) < DUE_BATCH:
                return total, at
            tx.session.flush()

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
