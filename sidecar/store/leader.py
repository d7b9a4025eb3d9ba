"""Leader election: exactly one replica runs the evaluator (and retention).

On PostgreSQL the leader is the replica holding a session-level advisory lock
(``pg_try_advisory_lock(LEADER_LOCK_KEY)``) on a dedicated connection, outside the pool.
Followers try to take the lock on every evaluator pass (about once a second), so:

- a leader that dies (process killed, crashed, stopped): its connection closes, PostgreSQL
  releases the lock at once, and a follower takes over on its next try: within ~2 s;
- a leader whose host vanishes or whose process hangs: nothing closes the connection, so the
  lock lives until the server drops the session. The lock connection sets
  ``idle_session_timeout`` to :data:`LEASE` (PostgreSQL 14+; a healthy leader runs a query on
  it every second, so only a hung or unreachable one is ever idle that long), and TCP
  keepalives plus ``tcp_user_timeout`` notice a dead peer within a few seconds. Takeover is
  then bounded by ``LEASE`` + ~2 s. On older servers only the TCP keepalives apply.

A leader checks its connection before each pass and steps down when it is gone. A replica that
comes back from a pause may finish one pass it started as leader; that is harmless: job rows
are locked (``SKIP LOCKED``) and ``(job, slot)`` is unique, so a slot is never counted twice.

On SQLite there is one sidecar per store file and it is always the leader; with
``apply_process``, its applier process leads and its server follows (``leads``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .database import Store

__all__ = ["LEADER_LOCK_KEY", "LEASE", "Leadership"]

log = logging.getLogger("jobpulse.sidecar.leader")

LEADER_LOCK_KEY = 0x6A6F62706C64  # "jobpld": distinct from the migration lock's key
LEASE = 10.0  # seconds a silent lock session survives on the server
CHECK_EVERY = 1.0  # the leader re-checks its connection at most this often


class Leadership:
    def __init__(
        self,
        store: Store,
        *,
        key: int = LEADER_LOCK_KEY,
        lease: float = LEASE,
        leads: bool | None = None,
    ) -> None:
        """``leads``: decided, not elected (a SQLite sidecar's server and applier process)."""
        self._store = store
        self._decided = leads
        self._key = key
        self._lease = lease
        self._conn: Any = None
        self._held = store.is_sqlite if leads is None else leads
        self._checked = 0.0

    @property
    def is_leader(self) -> bool:
        return self._held

    def check(self) -> bool:
        """Keep or try to take the lead; returns whether this replica leads. Blocking."""
        if self._decided is not None:
            return self._decided
        if self._store.is_sqlite:
            return True
        now = time.monotonic()
        if self._held and now - self._checked < CHECK_EVERY:
            return True
        try:
            conn = self._conn or self._connect()
            if self._held:
                conn.execute("SELECT 1")
            else:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
                self._held = bool(row and row[0])
                if self._held:
                    log.info("this replica is now the leader: it runs the evaluator")
            self._checked = now
        except Exception as exc:
            if self._held:
                log.warning("lost the leader lock's connection (%s); stepping down", exc)
            self._drop()
        return self._held

    def release(self) -> None:
        """Give up the lead (on shutdown). The lock is unlocked before the session closes:
        the server ends a closed session when it gets to it, and until then a follower's try
        would still fail, so the hand-over waited for the follower's next pass."""
        if self._store.is_sqlite:
            return
        if self._held and self._conn is not None:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            except Exception:
                log.debug("unlocking the leader lock failed; closing releases it", exc_info=True)
        self._drop()

    def _connect(self) -> Any:
        import psycopg

        url = self._store.url.set(drivername="postgresql")
        conn = psycopg.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=2,
            keepalives_interval=1,
            keepalives_count=3,
            tcp_user_timeout=5000,
            application_name="jobpulse-leader",
        )
        try:
            conn.execute(f"SET idle_session_timeout = {int(self._lease * 1000)}")
        except psycopg.Error:
            log.info("the server has no idle_session_timeout (PostgreSQL < 14); keepalives only")
        self._conn = conn
        return conn

    def _drop(self) -> None:
        was, self._held = self._held, False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing the leader connection failed", exc_info=True)
        if was:
            log.info("this replica is no longer the leader")
