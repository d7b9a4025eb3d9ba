"""Group commit: one thread applies every write in batches, one transaction per batch.

Handlers submit work (a function of a :class:`~jobpulse.sidecar.store.database.Tx`) and await its
result, which arrives only after the transaction holding it has committed. While one batch
commits, the next accumulates: durability costs one fsync per batch, not per request.

A batch is first applied optimistically, every item in one transaction with one flush at the
end. If any item raises, or the commit fails, the whole transaction is rolled back and the
batch is applied again with each item in its own SAVEPOINT, so one failing item does not undo
the others. Work items must therefore be safe to run again (they are functions of the store's
state; results are handed out only after a commit). A batch of one item is its own transaction,
without a savepoint.

With several replicas on PostgreSQL an item can lose a race that only a retry resolves: a
deadlock between two batches locking the same jobs in different orders, or a unique violation
when another replica created the same job or slot first. Its savepoint is rolled back (which
also releases the row locks it took); the items before it commit, and it is applied again first
in a new transaction (holding no other locks), up to ``RETRIES`` times.

An item that raises a :class:`~jobpulse.instrumentation.errors.JobpulseError` refused on
purpose (a PUT of fields the configuration file sets): its caller answers it as a 4xx, so the
writer logs one line at INFO. Any other exception is a fault and is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError

from jobpulse.instrumentation.errors import JobpulseError

from .database import Store
from .groupcommit import GroupCommit, StoreUnavailable
from .tx import Tx

__all__ = ["StoreUnavailable", "Writer"]

log = logging.getLogger("jobpulse.sidecar.writer")
T = TypeVar("T")
_AGAIN = object()
MAX_BATCH = 512
RETRIES = 3
# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
_RETRY_STATES = ("40001", "40P01", "55P03")


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) in _RETRY_STATES
    return False


def _log_failure(exc: Exception) -> None:
    """Inside an ``except`` block: a refusal on purpose in one line, a fault with its trace."""
    if isinstance(exc, JobpulseError):
        log.info("write refused: %s: %s", type(exc).__name__, exc)
    else:
        log.exception("write failed")


class Writer(GroupCommit[tuple[Callable[[Tx], Any], "Future[Any]"]]):
    def __init__(
        self,
        store: Store,
        *,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        super().__init__(name="jobpulse-writer", max_batch=MAX_BATCH)
        self._store = store
        self._on_commit = on_commit
        self.healthy = True
        # Batches rolled back and applied again item by item: a request that failed, or one
        # that lost a race with another replica.
        self.rollbacks = 0

    def _fail(self, item: tuple[Callable[[Tx], Any], Future[Any]], error: Exception) -> None:
        item[1].set_exception(error)

    def submit(self, work: Callable[[Tx], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._enqueue((work, fut))
        return fut

    async def run(self, work: Callable[[Tx], T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    def run_sync(self, work: Callable[[Tx], T], timeout: float | None = 60) -> T:
        return self.submit(work).result(timeout)

    def _commit_batch(self, batch: list[tuple[Callable[[Tx], Any], Future[Any]]]) -> None:
        pending = [(work, fut) for work, fut in batch if fut.set_running_or_notify_cancel()]
        if len(pending) == 1:
            self._alone(*pending[0])
            return
        if pending and self._optimistic(pending):
            return
        while pending:
            pending = self._transaction(pending)

    def _optimistic(self, items: list[tuple[Callable[[Tx], Any], Future[Any]]]) -> bool:
        """Apply ``items`` in one transaction without savepoints; False (and nothing kept) if
        any of them raised or the commit failed."""
        started = time.perf_counter()
        try:
            with self._store.transaction() as tx:
                results = [work(tx) for work, _ in items]
        except Exception as exc:
            log.debug("batch of %d rolled back (%s); applying item by item", len(items), exc)
            self.rollbacks += 1
            return False
        self.healthy = True
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(items))
        for (_, fut), value in zip(items, results, strict=True):
            fut.set_result(value)
        return True

    def _alone(self, work: Callable[[Tx], Any], fut: Future[Any]) -> None:
        """One item in its own transaction, without a savepoint: on SQLite a savepoint would
        begin the transaction, and with it the write lock, before the item has read what it
        needs (see ``Store.transaction``). An item that lost a race is applied again in a new
        transaction."""
        for attempt in range(RETRIES + 1):
            started = time.perf_counter()
            failed: Exception | None = None
            try:
                with self._store.transaction() as tx:
                    try:
                        value = work(tx)
                        tx.write_pending()
                    except Exception as exc:
                        failed = exc
                        raise
            except Exception as exc:
                if failed is None:
                    fut.set_exception(self._unavailable(exc))
                    return
                if attempt < RETRIES and _retryable(failed):
                    log.info("write lost a race (%s); retrying", type(failed).__name__)
                    continue
                _log_failure(failed)
                fut.set_exception(failed)
                return
            self.healthy = True
            if self._on_commit is not None:
                self._on_commit(time.perf_counter() - started, 1)
            fut.set_result(value)
            return

    def _transaction(self, items: list[tuple[Callable[[Tx], Any], Future[Any]]]) -> list[Any]:
        """Apply ``items`` in one transaction; returns those left for a new one (an item that
        lost a race while earlier items of the batch held row locks goes first in the next)."""
        started = time.perf_counter()
        results: list[tuple[Future[Any], bool, Any]] = []
        rest: list[Any] = []
        try:
            with self._store.transaction() as tx:
                for index, (work, fut) in enumerate(items):
                    ok, value = self._apply(tx, work, alone=index == 0)
                    if value is _AGAIN:
                        rest = items[index:]
                        break
                    results.append((fut, ok, value))
            self.healthy = True
        except Exception as exc:
            error = self._unavailable(exc)
            for _, fut in items:
                fut.set_exception(error)
            return []
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(results))
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        return rest

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        """Inside an ``except`` block: the commit itself failed (the store, not an item)."""
        log.exception("store commit failed")
        self.healthy = False
        return StoreUnavailable(f"the store cannot take writes: {exc}")

    def _apply(self, tx: Tx, work: Callable[[Tx], Any], *, alone: bool) -> tuple[bool, Any]:
        """One item in its own savepoint. An item that lost a race is retried: at once when it
        is the first of its transaction, else (``_AGAIN``) after the earlier ones commit, since
        the locks they hold may be what the other writer waits for."""
        for attempt in range(RETRIES + 1):
            try:
                with tx.session.begin_nested():
                    value = work(tx)
                    tx.write_pending()  # inside the savepoint: it is this item's
                    return True, value
            except Exception as exc:  # one item's failure stays with that item
                tx.reset_cache()
                if attempt < RETRIES and _retryable(exc):
                    log.info("write lost a race (%s); retrying", type(exc).__name__)
                    if not alone:
                        return False, _AGAIN
                    continue
                _log_failure(exc)
                return False, exc
        raise AssertionError("unreachable")
