"""The durable inbox: accept an event by appending it, apply it just behind.

An ingest request is answered once its events are durable in the ``inbox`` table, not once
they are evaluated (DESIGN.md, "Ingest through a durable inbox"):

- :class:`Registry` knows which jobs exist (or were accepted and wait in the inbox), so an
  unknown job without ``create`` and the job cap are decided before the answer.
- ``Appender`` (``appender.py``) is a group-commit thread: the requests that arrive while one
  batch commits form the next, checked for duplicates in a few statements for the whole batch,
  inserted with one prepared ``executemany`` and committed with one fsync.
- ``apply_rows`` (``applier.py``) runs the domain engine over inbox rows, in order, and deletes
  them in the same transaction as their effects: a crash applies nothing twice and skips
  nothing, and a row whose id committed out of order is simply still there on the next pass.
- This module: the table's row format, the registry, and the small queries around them.

On SQLite the appender and the writer (which runs the applier and the evaluator) share one
in-process lock around their write transactions. On PostgreSQL each append holds a shared
advisory lock and the evaluator's pass an exclusive one: either way an append whose arrival
time is before the pass's ``now`` has committed before the pass reads the inbox, so no slot
is judged missed while the run that fills it waits in the inbox.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, delete, func, select, text

from jobpulse.instrumentation.wire import Event

from ..domain.base import key_ts
from ..domain.tables import InboxRow, Job
from ..jsonio import dumps, loads

if TYPE_CHECKING:
    from .tx import Tx

__all__ = [
    "APPLY_BATCH",
    "CHUNK",
    "CREATE",
    "INBOX",
    "INBOX_LOCK_KEY",
    "PAIR_LATEST",
    "IngestResult",
    "Registry",
    "decode",
    "drop_row",
    "encode",
    "forget_job",
    "inbox_lag",
    "key_ts",
    "lock_for_pass",
    "oldest_arrival",
    "pending_among",
    "row_ids",
]

log = logging.getLogger("jobpulse.sidecar.inbox")

INBOX_LOCK_KEY = 0x6A6F62696E62  # "jobinb": appends share it, the evaluator's pass takes it alone
# Events per apply transaction, at most: bounds how long an append waits for the write lock
# (only its writes hold it, and the whole batch only once the backlog is YIELD_LAG old). Jobs,
# their running runs and slots are read once per batch, so a few jobs sending many events cost
# far less per event in large batches: 1,000 applies benchmark 10's load (100 jobs) at 1.4x
# the events per CPU second of 200 (docs/benchmarks.md, fourteenth round).
APPLY_BATCH = 1000
CREATE = 1
PAIR_LATEST = 2
CHUNK = 400  # ids per IN (...) list
INBOX = cast(Table, InboxRow.__table__)
_FIELDS = tuple(f.name for f in fields(Event))


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)
    # Per event: the run it was applied to (known once applied), and its inbox row.
    run_ids: list[str | None] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)


_FIELDS_OF = operator.attrgetter(*_FIELDS)


def encode(ev: Event) -> str:
    """An event's fields as compact JSON (floats round-trip exactly)."""
    return dumps(_FIELDS_OF(ev))


def decode(body: str) -> Event:
    return Event(*loads(body))


class Registry:
    """The names of the jobs that exist or wait in the inbox, with whether the configuration
    file defines each. Misses are looked up in the store (another replica may have created the
    job), so the registry only has to be complete for the job cap; it is reloaded from the
    store now and then to forget jobs deleted elsewhere."""

    def __init__(self) -> None:
        self._jobs: dict[str, bool] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def in_file(self, name: str) -> bool:
        return self._jobs.get(name, False)

    def add(self, name: str, in_file: bool = False) -> None:
        self._jobs[name] = in_file

    def discard(self, name: str) -> None:
        self._jobs.pop(name, None)

    def load(self, conn: Connection) -> None:
        jobs: dict[str, bool] = dict.fromkeys(
            conn.execute(select(INBOX.c.job).distinct()).scalars(), False
        )
        jobs.update((name, bool(f)) for name, f in conn.execute(select(Job.name, Job.in_file)))
        self._jobs = jobs

    def resolve(self, conn: Connection, names: Iterable[str]) -> None:
        """Look up names the registry does not know in the store."""
        missing = sorted({n for n in names if n not in self._jobs})
        for i in range(0, len(missing), CHUNK):
            chunk = missing[i : i + CHUNK]
            for name, in_file in conn.execute(
                select(Job.name, Job.in_file).where(Job.name.in_(chunk))
            ):
                self._jobs[name] = bool(in_file)
            for name in conn.execute(
                select(INBOX.c.job).where(INBOX.c.job.in_(chunk)).distinct()
            ).scalars():
                self._jobs.setdefault(name, False)


def drop_row(tx: Tx, row_id: int) -> str | None:
    """Remove one row the engine cannot apply; returns its body for the log."""
    conn = tx.session.connection()
    body = conn.execute(select(INBOX.c.body).where(INBOX.c.id == row_id)).scalar()
    conn.execute(delete(INBOX).where(INBOX.c.id == row_id))
    return body


def row_ids(tx: Tx, *, after: int, limit: int) -> list[int]:
    conn = tx.session.connection()
    query = select(INBOX.c.id).where(INBOX.c.id > after).order_by(INBOX.c.id).limit(limit)
    return list(conn.execute(query).scalars())


def inbox_lag(conn: Connection) -> tuple[int, float | None]:
    """How many events wait in the inbox, and when the oldest of them arrived."""
    count, oldest = conn.execute(select(func.count(), func.min(INBOX.c.arrived_at))).one()
    return int(count or 0), oldest


def oldest_arrival(conn: Connection) -> float | None:
    """When the oldest event waiting in the inbox arrived (None: none waits)."""
    oldest: float | None = conn.execute(select(func.min(INBOX.c.arrived_at))).scalar()
    return oldest


def pending_among(conn: Connection, ids: Sequence[int]) -> int:
    """How many of ``ids`` are still in the inbox."""
    total = 0
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        total += (
            conn.execute(
                select(func.count()).select_from(INBOX).where(INBOX.c.id.in_(chunk))
            ).scalar()
            or 0
        )
    return total


def forget_job(tx: Tx, name: str) -> None:
    """A deleted job's events still waiting must not bring it back."""
    tx.session.connection().execute(delete(INBOX).where(INBOX.c.job == name))


def lock_for_pass(conn: Connection, *, exclusive: bool) -> None:
    """PostgreSQL: appends share the inbox lock; the evaluator's pass holds it alone."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    conn.execute(text(f"SELECT {fn}(:key)"), {"key": INBOX_LOCK_KEY})
