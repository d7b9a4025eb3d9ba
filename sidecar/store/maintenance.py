"""Maintenance windows created through the admin API: stored in ``maintenance`` so that every
replica judges with them (the transaction reads them as the engine's windows, see ``tx.py``).

A window opens now (or at a later ``start``) for a duration; ending it early sets its end to
that moment, and an upcoming window ended before it opens never does. Opening or ending one
refreshes the jobs it holds, so their ``in_maintenance`` and next deadline follow at once.
Closed windows stay until retention prunes them, so a catch-up after downtime still sees the
windows that were open while the sidecar was down.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.engine import Engine
from ..domain.maintenance import Window
from ..domain.tables import Job, MaintenanceRow
from .tx import Tx

__all__ = ["close_window", "list_windows", "open_window"]


def _refresh_held(tx: Tx, engine: Engine, window: Window, now: float) -> None:
    query = select(Job).where(Job.removed.is_(False))
    if not window.match:
        query = query.where(Job.name.in_(sorted(window.jobs)))
    for job in tx.session.scalars(query):
        if window.holds(job.name, engine.config(job).labels):
            engine.refresh(tx, job, now)


def open_window(
    tx: Tx,
    engine: Engine,
    *,
    jobs: Sequence[str],
    match: dict[str, str],
    start: float,
    end: float,
    reason: str | None,
    now: float,
) -> MaintenanceRow:
    row = MaintenanceRow(
        jobs=list(jobs) or None,
        match=match or None,
        starts_at=start,
        ends_at=end,
        reason=reason,
        created_at=now,
    )
    tx.session.add(row)
    tx.session.flush()
    tx.forget_maintenance()
    _refresh_held(tx, engine, Window.from_row(row), now)
    return row


def close_window(
    tx: Tx, engine: Engine, window_id: int, now: float
) -> tuple[MaintenanceRow | None, bool]:
    """End a window now: the window (None: no such one) and whether this ended it (False:
    it had already closed, and is unchanged)."""
    row = tx.session.get(MaintenanceRow, window_id, with_for_update=tx.locking)
    if row is None or row.ends_at <= now:
        return row, False
    held = Window.from_row(row)
    row.ends_at = max(row.starts_at, now)
    row.ended_at = now
    tx.session.flush()
    tx.forget_maintenance()
    _refresh_held(tx, engine, held, now)
    return row, True


def list_windows(session: Session, *, since: float) -> list[MaintenanceRow]:
    """The windows that close after ``since`` (open and upcoming ones), soonest first."""
    query = (
        select(MaintenanceRow)
        .where(MaintenanceRow.ends_at > since, MaintenanceRow.ends_at > MaintenanceRow.starts_at)
        .order_by(MaintenanceRow.starts_at, MaintenanceRow.id)
    )
    return list(session.scalars(query))
