"""The notification outbox: one row per (flip, receiver), written in the transaction that
records the flip, deleted once delivered.

:meth:`Outbox.on_flip` is called by :meth:`~jobpulse.sidecar.store.tx.Tx.add_flip`, so every
flip a transaction commits (the applier's, the evaluator's, a pause or resume from the admin
API, a configuration change) commits its notifications with it, and a rolled-back flip leaves
none. The sender (``notify/``) reads due rows after commit, so ``kill -9`` between the commit
and the delivery delays a notification but never loses it.

Which flips notify: a job going ``down`` fires; leaving ``down`` (``up``, ``paused``, ``new``)
resolves. Other flips (``new``→``up``, ``up``→``paused``, a new reason while ``down``) send
nothing. Besides flips, a down job that is deleted or removed from the file resolves
(:meth:`Outbox.on_gone`), one back in the file fires again (:meth:`Outbox.on_back`), and one
whose labels change is, to an Alertmanager, a new alert (:meth:`Outbox.on_relabel`).

Rows of one (receiver, job) are delivered in order: a row waits while an older one of the same
pair is pending, so a receiver never sees a job resolve before it fired. ``delivery`` is
``pending`` until the row is sent (deleted) or given up (``gave_up``, kept a week for the
status page).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    Index,
    Integer,
    String,
    Text,
    delete,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from ..domain.clock import Clock
from ..domain.tables import Base, FlipRecord, Job

__all__ = [
    "GAVE_UP_KEPT",
    "Outbox",
    "OutboxRow",
    "OutboxStatus",
    "alert_of",
    "claim",
    "delivered",
    "drop_receivers",
    "due_rows",
    "firing_jobs",
    "give_up",
    "next_due",
    "outbox_status",
    "prune_given_up",
    "retry_at",
]

GAVE_UP_KEPT = 7 * 86400.0  # given-up rows stay this long for the status page and the API


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "delivery", "next_attempt_at"),
        Index("ix_outbox_order", "receiver", "job", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(32), unique=True)  # the Idempotency-Key
    receiver: Mapped[str] = mapped_column(String(64))
    job: Mapped[str] = mapped_column(String(128))
    alert: Mapped[str] = mapped_column(String(8))  # firing | resolved
    from_state: Mapped[str] = mapped_column(String(8))
    to_state: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(16), default=None)
    at: Mapped[float] = mapped_column(Float)  # the flip's time
    labels: Mapped[dict[str, str]] = mapped_column(JSON)  # the job's labels at the flip
    created_at: Mapped[float] = mapped_column(Float)
    delivery: Mapped[str] = mapped_column(String(8), default="pending")  # pending | gave_up
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_attempt_at: Mapped[float | None] = mapped_column(Float, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


def alert_of(from_state: str, to_state: str) -> str | None:
    """``firing`` for a flip into ``down``, ``resolved`` for one out of it, else None."""
    if to_state == "down" and from_state != "down":
        return "firing"
    if from_state == "down" and to_state != "down":
        return "resolved"
    return None


class Outbox:
    """Adds the outbox rows of a flip to the flip's own transaction.

    ``receivers`` is replaced when the configuration is (re)loaded, and ``alertmanagers`` with
    it (the names of those receivers that are Alertmanagers); ``labels_of`` gives a job's
    effective labels. ``added`` is set when rows were added (the sender is woken after the
    commit)."""

    def __init__(self, clock: Clock, labels_of: Callable[[Job], Mapping[str, str]]) -> None:
        self.clock = clock
        self.labels_of = labels_of
        self.receivers: tuple[str, ...] = ()
        self.alertmanagers: tuple[str, ...] = ()
        self.added = False

    def on_flip(self, session: Session, flip: FlipRecord) -> None:
        alert = alert_of(flip.from_state, flip.to_state)
        if alert is None or not self.receivers:
            return
        with session.no_autoflush:
            job = session.get(Job, flip.job_id)
        if job is None:
            return
        self._add(
            session,
            self.receivers,
            job.name,
            alert,
            (flip.from_state, flip.to_state),
            flip.reason,
            flip.at,
            self.labels_of(job),
        )

    def on_gone(self, session: Session, job: Job, to_state: str, at: float) -> None:
        """``job`` is deleted (``to_state`` ``deleted``) or removed from the configuration file
        (``removed``): if it was down, its alert resolves now rather than when the last
        re-sent ``endsAt`` runs out."""
        if job.state != "down" or job.removed:
            return
        labels = self.labels_of(job)
        self._add(
            session, self.receivers, job.name, "resolved", ("down", to_state), None, at, labels
        )

    def on_back(self, session: Session, job: Job) -> None:
        """A job removed from the file while down is back in it: its alert fires again."""
        if job.state == "down":
            self._add(
                session,
                self.receivers,
                job.name,
                "firing",
                ("removed", "down"),
                job.reason,
                job.state_since,
                self.labels_of(job),
            )

    def on_relabel(self, session: Session, job: Job, old: Mapping[str, str]) -> None:
        """A down job's labels changed: an Alertmanager identifies an alert by its labels, so
        the alert under the old ones resolves now and the one under the new ones fires (from
        when the job went down). Webhooks name the job, so they are told nothing new."""
        new = self.labels_of(job)
        if job.state != "down" or job.removed or dict(new) == dict(old):
            return
        at, receivers = self.clock.now(), self.alertmanagers
        self._add(session, receivers, job.name, "resolved", ("down", "down"), None, at, old)
        self._add(
            session,
            receivers,
            job.name,
            "firing",
            ("down", "down"),
            job.reason,
            job.state_since,
            new,
        )

    def _add(
        self,
        session: Session,
        receivers: Iterable[str],
        job: str,
        alert: str,
        states: tuple[str, str],
        reason: str | None,
        at: float,
        labels: Mapping[str, str],
    ) -> None:
        now = self.clock.now()
        for receiver in receivers:
            session.add(
                OutboxRow(
                    key=uuid.uuid4().hex,
                    receiver=receiver,
                    job=job,
                    alert=alert,
                    from_state=states[0],
                    to_state=states[1],
                    reason=reason,
                    at=at,
                    labels=dict(labels),
                    created_at=now,
                    delivery="pending",
                    attempts=0,
                    next_attempt_at=now,
                )
            )
            self.added = True


def due_rows(session: Session, now: float, limit: int) -> list[OutboxRow]:
    """Pending rows whose attempt is due and that no older pending row of the same receiver
    and job holds back, oldest first."""
    older = aliased(OutboxRow)
    blocked = exists().where(
        older.receiver == OutboxRow.receiver,
        older.job == OutboxRow.job,
        older.delivery == "pending",
        older.id < OutboxRow.id,
    )
    query = (
        select(OutboxRow)
        .where(OutboxRow.delivery == "pending", OutboxRow.next_attempt_at <= now, ~blocked)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    rows = list(session.scalars(query))
    for row in rows:
        session.expunge(row)
    return rows


def next_due(session: Session) -> float | None:
    """When the earliest pending row is due (None: nothing pending)."""
    return session.scalar(
        select(func.min(OutboxRow.next_attempt_at)).where(OutboxRow.delivery == "pending")
    )


def claim(session: Session, row: OutboxRow, now: float, lease: float) -> bool:
    """Take ``row`` for one attempt: count it and push its next attempt ``lease`` seconds out
    (so a sender that dies mid-attempt leaves it to be retried then). False when another
    sender took it first (its ``next_attempt_at`` moved since it was read)."""
    result = session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.id == row.id,
            OutboxRow.delivery == "pending",
            OutboxRow.next_attempt_at == row.next_attempt_at,
        )
        .values(attempts=OutboxRow.attempts + 1, last_attempt_at=now, next_attempt_at=now + lease)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def delivered(session: Session, row_id: int) -> None:
    session.execute(delete(OutboxRow).where(OutboxRow.id == row_id))


def retry_at(session: Session, row_id: int, at: float, error: str) -> None:
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id, OutboxRow.delivery == "pending")
        .values(next_attempt_at=at, last_error=error)
    )


def give_up(session: Session, row_id: int, error: str) -> None:
    session.execute(
        update(OutboxRow).where(OutboxRow.id == row_id).values(delivery="gave_up", last_error=error)
    )


def drop_receivers(session: Session, keep: Iterable[str]) -> dict[str, int]:
    """Delete the pending rows of receivers no longer configured; counts by receiver."""
    kept = list(keep)
    stale = select(OutboxRow.receiver, func.count()).where(OutboxRow.delivery == "pending")
    if kept:
        stale = stale.where(OutboxRow.receiver.not_in(kept))
    counts: dict[str, int] = dict(session.execute(stale.group_by(OutboxRow.receiver)).all())
    if counts:
        session.execute(
            delete(OutboxRow).where(
                OutboxRow.delivery == "pending", OutboxRow.receiver.in_(list(counts))
            )
        )
    return counts


def prune_given_up(session: Session, before: float) -> None:
    session.execute(
        delete(OutboxRow).where(OutboxRow.delivery == "gave_up", OutboxRow.created_at < before)
    )


def firing_jobs(session: Session) -> list[Job]:
    """Jobs that are down now (removed ones aside): the alerts to keep firing."""
    query = select(Job).where(Job.state == "down", Job.removed.is_(False)).order_by(Job.name)
    jobs = list(session.scalars(query))
    for job in jobs:
        session.expunge(job)
    return jobs


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What the status page shows."""

    pending: int
    gave_up: int
    last_error: str | None
    last_error_at: float | None
    last_error_receiver: str | None


def outbox_status(session: Session) -> OutboxStatus:
    counts = dict(
        session.execute(select(OutboxRow.delivery, func.count()).group_by(OutboxRow.delivery)).all()
    )
    failing = session.scalars(
        select(OutboxRow)
        .where(OutboxRow.last_error.is_not(None))
        .order_by(OutboxRow.last_attempt_at.desc(), OutboxRow.id.desc())
        .limit(1)
    ).first()
    return OutboxStatus(
        pending=int(counts.get("pending", 0)),
        gave_up=int(counts.get("gave_up", 0)),
        last_error=failing.last_error if failing else None,
        last_error_at=failing.last_attempt_at if failing else None,
        last_error_receiver=failing.receiver if failing else None,
    )
