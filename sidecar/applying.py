"""Applying the inbox: the evaluator's side of the durable inbox.

:class:`InboxApplier` runs the engine over what the appender accepted (``store/applier.py``
for one transaction's worth), gives way to a burst of ingest until its backlog is
``YIELD_LAG`` old, holds every: jobs' rows during the catch-up delay and applies them in ts
order after it, drops a row the engine cannot apply at all (counted), and runs the
evaluator's pass under the inbox lock so no slot is judged at ``now`` while an event that
arrived before ``now`` still waits (see ``store/inbox.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial

from .domain.clock import Clock
from .domain.engine import Engine
from .exposition.selfmetrics import SelfMetrics
from .store.appender import Appender
from .store.applier import Outcome, apply_rows, held_order
from .store.database import Store
from .store.inbox import APPLY_BATCH, drop_row, inbox_lag, lock_for_pass, oldest_arrival, row_ids
from .store.tx import Tx
from .store.writer import StoreUnavailable, Writer

__all__ = ["DUE_BATCH", "InboxApplier"]

log = logging.getLogger("jobpulse.sidecar")
DUE_BATCH = 500
TICK_PATIENCE = 10.0  # seconds a pass applies the inbox before it judges as far as it got
YIELD_LAG = 2.5  # the applier gives way to appends only while its backlog is younger than this
# Ingest requests in flight that make the applier give way (a burst is on): any. In one
# process a request's append waits for the applier's batch in progress, for the interpreter
# (which an append takes back at every SQLite step) and for the write lock: a client sending
# 500-event batches back to back (a short-lived job's flush at exit) saw each append take 10x
# as long as alone (316 ms against 22 ms) and spooled half its events past its exit budget
# (docs/benchmarks.md, fifteenth round). A flow with gaps of QUIET is applied between them.
BURST = 1
# The same for an applier process (apply_process), which has a core of its own: what it shares
# with ingest is the write lock and the disk's flushes, which a few requests at once share well.
BURST_BESIDE = 4
# How old the oldest waiting event is when a batch holds the write lock from its start, so
# that appends wait for whole batches (the backpressure of a sustained overload): in one
# process, YIELD_LAG. An applier process has a core of its own and applies while the server
# appends; holding appends back for its whole batches cost a ping flood a third of its pace
# (docs/benchmarks.md, sixteenth round). It slows ingest only once it is this far behind.
HOLD_LAG = YIELD_LAG
HOLD_LAG_BESIDE = 10.0
QUIET = 0.05  # seconds unsaturated that end a burst
# The same for an applier process. What is in flight after its batch is mostly what piled up
# behind the batch's writes, answered at the next group commit: waiting QUIET after that took
# a third of its time at 13,000 events/s in 100-event requests, and it fell behind. Ending a
# burst at the first quiet instant instead cost a flood of pings a fifth of its pace and the
# top of the hour 0.8 s (a burst's clients all wait for one group commit and send again at
# once, so it has quiet instants too). Three quiet polls in a row tell the two apart
# (docs/benchmarks.md, eighteenth round).
QUIET_BESIDE = 0.015
PAUSE = 0.005  # the applier's step while it gives way


class InboxApplier:
    def __init__(
        self,
        *,
        store: Store,
        writer: Writer,
        engine: Engine,
        appender: Appender,
        clock: Clock,
        metrics: SelfMetrics,
        ingesting: Callable[[], int],
        on_applied: Callable[[], None],
        burst: int = BURST,
        hold_lag: float = HOLD_LAG,
        quiet: float = QUIET,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.writer = writer
        self.engine = engine
        self.appender = appender
        self.clock = clock
        self.metrics = metrics
        self.ingesting = ingesting  # ingest requests in flight
        self.burst = burst  # that many of them at once are a burst (see busy)
        self.hold_lag = hold_lag  # see HOLD_LAG
        self.quiet = quiet  # see QUIET
        self.on_applied = on_applied  # after every batch applied
        self._sleep = sleep
        # Inbox rows of every: jobs held back during the catch-up delay (see apply_rows).
        self._held: set[int] = set()

    def apply_pending(
        self,
        now: float | None = None,
        *,
        yield_to_appends: bool = False,
        patience: float | None = None,
        collect: bool = True,
    ) -> dict[int, Outcome]:
        """Apply what waits in the inbox, in transactions of ``APPLY_BATCH`` events, until a
        batch finds fewer, or for ``patience`` seconds at most (then the rest is left for the
        next call: under a sustained overload the inbox never runs dry).

        Returns each applied row's outcome, by row id; with ``collect`` false (the evaluator's
        passes, which a backlog can keep busy for ``TICK_PATIENCE``), nothing: a pass through
        a backlog would otherwise hold an outcome for every event it applied until it ends.

        ``yield_to_appends`` (the evaluator's background passes): between batches, let a burst
        of appends go first while the backlog is younger than ``YIELD_LAG``, so a burst is
        acknowledged at the speed of the inbox and applied just behind it; past that, take
        turns with it (see :meth:`give_way`). On SQLite a batch whose oldest event is older
        than ``hold_lag`` (see ``HOLD_LAG``) holds the write lock from its start (appends
        wait for it, as they wait for its writes in any case), so a sustained overload slows
        ingest to the applier's pace instead of growing the backlog without bound."""
        until = None if patience is None else time.monotonic() + patience
        at = self.clock.now() if now is None else now
        outcomes: dict[int, Outcome] = {}
        if self._held and at >= self.engine.judge_from:
            # The catch-up delay is over: what was held back goes first, in ts order.
            order = self.writer.run_sync(partial(held_order, ids=set(self._held)))
            for i in range(0, len(order), APPLY_BATCH):
                chunk = order[i : i + APPLY_BATCH]
                done, _, _ = self._apply_batch(after=0, now=at, only=chunk)
                if collect:
                    outcomes.update(done)
            self._held.clear()
        after = 0
        newest = 0.0  # the arrival of the newest event applied in this pass
        turn = 0.0  # how long the last batch held the process
        while True:
            if yield_to_appends:
                self.give_way(newest, turn)
            started = time.monotonic()
            done, after, read = self._apply_batch(after=after, now=at)
            turn = time.monotonic() - started
            if collect:
                outcomes.update(done)
            if done:
                newest = max(newest, *(o.arrived_at for o in done.values()))
            if read < APPLY_BATCH or (until is not None and time.monotonic() >= until):
                return outcomes

    def _oldest_waiting(self) -> float:
        with self.store.engine.connect() as conn:
            oldest = oldest_arrival(conn)
        return self.clock.now() if oldest is None else oldest

    def busy(self) -> bool:
        """Ingest has the process: ``burst`` requests in flight at once (see ``BURST``), or
        appends queued behind the one being committed."""
        return self.ingesting() >= self.burst or self.appender.waiting()

    def give_way(self, newest_applied: float, turn: float) -> None:
        """While ingest is saturated, let appends have the process until the oldest unapplied
        event (about the newest one applied in this pass, as events are applied in order; the
        inbox's oldest before the first batch) is ``YIELD_LAG`` old: a burst is acknowledged at
        the speed of the inbox and applied just behind it. Past that lag the two take turns:
        at ``YIELD_LAG`` the applier gives way for as long as its last batch (``turn``
        seconds) held the process, less as the lag grows, and not at all from twice
        ``YIELD_LAG``. So a burst a little longer than the lag is still acknowledged at about
        half its pace (not at one group commit per batch applied), while a sustained overload
        is slowed to the applier's pace with a bounded lag. The burst is over once ingest has been
        unsaturated for ``quiet`` seconds (``QUIET``; ``QUIET_BESIDE`` in an applier process):
        between two group commits all requests in flight can be answered at one instant,
        before their clients send the next. Reads the inbox only when a burst is on."""
        if not self.busy():
            return
        oldest = newest_applied or self._oldest_waiting()
        waited = quiet = 0.0
        while waited < YIELD_LAG and quiet < self.quiet:
            lag = self.clock.now() - oldest
            if lag >= YIELD_LAG and waited >= turn * (2.0 - lag / YIELD_LAG):
                return
            self._sleep(PAUSE)
            waited += PAUSE
            quiet = 0.0 if self.busy() else quiet + PAUSE

    def _apply_batch(
        self, *, after: int, now: float, only: Sequence[int] | None = None
    ) -> tuple[dict[int, Outcome], int, int]:
        hold_before = self.clock.now() - self.hold_lag

        def work(tx: Tx) -> tuple[dict[int, Outcome], int, int]:
            return apply_rows(
                tx,
                self.engine,
                now=now,
                after=after,
                held=self._held,
                only=only,
                hold_before=hold_before,
            )

        try:
            done, last, read = self.writer.run_sync(work)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("applying inbox events failed; applying them one at a time")
            done, last, read = self._apply_one_by_one(after, now)
        if done:
            self.on_applied()
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

    def update_inbox_metrics(self) -> tuple[int, float]:
        """Set the inbox gauges; returns (pending events, age of the oldest in seconds)."""
        with self.store.engine.connect() as conn:
            pending, oldest = inbox_lag(conn)
        lag = max(self.clock.now() - oldest, 0.0) if oldest is not None else 0.0
        self.metrics.inbox_pending.set(pending)
        self.metrics.inbox_lag.set(lag)
        return pending, lag

    # ---------------------------------------------------------------- evaluator
    def tick(
        self, now: float | None = None, *, yield_to_appends: bool = False
    ) -> tuple[int, float]:
        """Apply the inbox, then evaluate every job whose deadline has come; returns how many
        jobs were evaluated and the instant they were evaluated at: ``now``, or the arrival of
        the oldest event still waiting in the inbox (see :meth:`_tick`). The pass reads the
        inbox and ``now`` holding the inbox lock (see ``store/inbox.py``), so every event that
        arrived before that instant is applied before any slot is judged at it."""
        self.apply_pending(
            now, yield_to_appends=yield_to_appends, patience=TICK_PATIENCE, collect=False
        )
        return self.writer.run_sync(partial(self._tick, now))

    def _tick(self, now: float | None, tx: Tx) -> tuple[int, float]:
        tx.hold_writes()  # SQLite: BEGIN IMMEDIATE, the write lock
        if tx.locking:
            lock_for_pass(tx.session.connection(), exclusive=True)
        at = self.clock.now() if now is None else now
        # Events that arrived after apply_pending's last batch read the inbox (a steady flow,
        # or a backlog past TICK_PATIENCE) still wait in it: judge at the arrival of the oldest
        # of them. Everything that arrived before it is applied, and nothing earlier can still
        # come (appends are held out while the pass reads, and take their arrival under the
        # same lock), so its slots are judged on all their events; the next pass judges
        # further. Applying them here would hold the write lock, and every append behind it,
        # while they are worked out: under a steady flow, most of the applier's work.
        oldest = oldest_arrival(tx.session.connection())
        if oldest is not None:
            at = min(at, oldest)
        total = 0
        while True:
            due = tx.due_jobs(at, DUE_BATCH)
            # A job's missed slot or timed-out run decides its tick for the jobs after it.
            tx.load_downstreams(job.name for job in due)
            for job in due:
                self.engine.tick(tx, job, at)
            total += len(due)
            if len(due) < DUE_BATCH:
                return total, at
            tx.session.flush()
