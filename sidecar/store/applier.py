"""The inbox's applier: the domain engine run over inbox rows, in order, each deleted in the
same transaction as its effects.

A crash applies nothing twice and skips nothing, and a row whose id committed out of order is
simply still there on the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from jobpulse.instrumentation.wire import Event

from ..domain.engine import Engine, Rejected
from .inbox import APPLY_BATCH, CHUNK, CREATE, INBOX, PAIR_LATEST, decode

if TYPE_CHECKING:
    from .tx import Tx

__all__ = ["Outcome", "apply_rows", "held_order", "id_runs"]

log = logging.getLogger("jobpulse.sidecar.inbox")


@dataclass(slots=True)
class Outcome:
    """What applying one inbox row did: the run it went to, or why the engine refused it."""

    run_id: str | None = None
    duplicate: bool = False
    warning: str | None = None
    rejected: str | None = None
    arrived_at: float = 0.0


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
    held: set[int] | None = None,
    only: Sequence[int] | None = None,
    hold_before: float | None = None,
) -> tuple[dict[int, Outcome], int, int]:
    """Apply up to ``limit`` inbox rows with ids above ``after``, oldest first, and delete them
    (``only``: exactly those rows, in that order).

    Each is applied as it arrived (``now`` = its arrival). During the catch-up delay after a
    start (``now`` before ``engine.judge_from``), rows of ``every:`` jobs that arrived in it are
    held back, their ids added to ``held``; once the delay is over they are applied first, in
    the order of their ``ts`` (:func:`held_order`), so spooled runs delivered newest first do
    not mark an older interval missed.

    When a row read arrived before ``hold_before``, the transaction holds the store's write
    lock from then on (:meth:`Tx.hold_writes`), not only from its first write.

    Returns the outcomes by row id, the last id read, and how many rows were read.
    """
    conn = tx.session.connection()
    query = select(INBOX.c.id, INBOX.c.arrived_at, INBOX.c.flags, INBOX.c.body)
    if only is not None:
        query = query.where(INBOX.c.id.in_(only))
    else:
        query = query.where(INBOX.c.id > after).order_by(INBOX.c.id)
        if limit is not None:
            query = query.limit(limit)
    if tx.locking:
        query = query.with_for_update(skip_locked=True)
    stored = list(conn.execute(query))
    if not stored:
        return {}, after, 0
    last, read = max(row[0] for row in stored), len(stored)
    if hold_before is not None and min(row[1] for row in stored) < hold_before:
        tx.hold_writes()
    holding = held is not None and now < engine.judge_from
    if holding:
        # Rows held in an earlier pass stay held until the delay is over: not decoded and
        # read ahead again on every pass (a spool flushed at start-up would cost its square).
        assert held is not None
        stored = [row for row in stored if row[0] not in held]
    rows = [(i, arrived, flags, decode(body)) for i, arrived, flags, body in stored]
    if only is not None:
        position = {row_id: n for n, row_id in enumerate(only)}
        rows.sort(key=lambda row: position[row[0]])
    engine.prefetch(tx, [ev for _, _, _, ev in rows])
    outcomes: dict[int, Outcome] = {}
    done: list[int] = []
    for row_id, arrived, flags, ev in rows:
        if holding and arrived < engine.judge_from and _is_every(tx, engine, ev):
            assert held is not None
            held.add(row_id)
            continue
        try:
            applied = engine.apply(
                tx, ev, arrived, create=bool(flags & CREATE), pair_latest=bool(flags & PAIR_LATEST)
            )
        except Rejected as exc:
            log.warning("inbox event for job %r refused when applied: %s", ev.job, exc.reason)
            outcomes[row_id] = Outcome(run_id=ev.run_id, rejected=exc.code, arrived_at=arrived)
        else:
            outcomes[row_id] = Outcome(
                applied.run_id, applied.duplicate, applied.warning, arrived_at=arrived
            )
        done.append(row_id)
    # Deleted with the transaction's other writes (Tx.defer), so that on SQLite the write lock
    # is taken for the writes alone. At the driver: on SQLite one prepared DELETE per run of
    # consecutive ids (rows are read in id order, so a batch is one run unless rows were held
    # back or deleted meanwhile; no other row can lie inside a run), on PostgreSQL one array
    # (an IN list of 400 ids cost SQLAlchemy a processed parameter each).
    if done:
        if tx.locking:
            tx.defer((_DELETE_PG, (done,)))
        else:
            tx.defer((_DELETE_SQLITE, id_runs(done)))
    return outcomes, last, read


def id_runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """``ids`` as runs of consecutive integers, each (first, last), in order."""
    runs: list[tuple[int, int]] = []
    for row_id in sorted(ids):
        if runs and row_id == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], row_id)
        else:
            runs.append((row_id, row_id))
    return runs


_DELETE_SQLITE = f"DELETE FROM {INBOX.name} WHERE id BETWEEN ? AND ?"
_DELETE_PG = f"DELETE FROM {INBOX.name} WHERE id = ANY(CAST(%b AS bigint[]))"


def held_order(tx: Tx, ids: Iterable[int]) -> list[int]:
    """The held rows still in the inbox, in the order of their ``ts``."""
    conn = tx.session.connection()
    wanted = sorted(ids)
    found: list[tuple[float, int]] = []
    for i in range(0, len(wanted), CHUNK):
        query = select(INBOX.c.ts, INBOX.c.id).where(INBOX.c.id.in_(wanted[i : i + CHUNK]))
        found.extend((ts, row_id) for ts, row_id in conn.execute(query))
    return [row_id for _, row_id in sorted(found)]
