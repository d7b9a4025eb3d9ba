"""Group commit: one thread applies every write in batches, one transaction per batch.

Handlers submit work (a function of a :class:`~jobpulse.sidecar.store.Tx`) and await its
result, which arrives only after the transaction holding it has committed. Each work item
runs in its own SAVEPOINT, so one failing item does not undo the others in its batch. While
one batch commits, the next accumulates: durability costs one fsync per batch, not per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from .store import Store, Tx

__all__ = ["StoreUnavailable", "Writer"]

log = logging.getLogger("jobpulse.sidecar.writer")
T = TypeVar("T")
_STOP = object()
MAX_BATCH = 512


class StoreUnavailable(Exception):
    """The store cannot take writes; nothing of the item was kept."""


class Writer:
    def __init__(
        self,
        store: Store,
        *,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._on_commit = on_commit
        self.healthy = True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="jobpulse-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, work: Callable[[Tx], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((work, fut))
        return fut

    async def run(self, work: Callable[[Tx], T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    def run_sync(self, work: Callable[[Tx], T], timeout: float | None = 60) -> T:
        return self.submit(work).result(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Callable[[Tx], Any], Future[Any]]]) -> None:
        started = time.perf_counter()
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            with self._store.transaction() as tx:
                for work, fut in batch:
                    if not fut.set_running_or_notify_cancel():
                        continue
                    try:
                        with tx.session.begin_nested():
                            results.append((fut, True, work(tx)))
                    except Exception as exc:  # one item's failure stays with that item
                        log.exception("write failed")
                        tx.reset_cache()
                        results.append((fut, False, exc))
            self.healthy = True
        except Exception as exc:
            log.exception("store commit failed")
            self.healthy = False
            error = StoreUnavailable(f"the store cannot take writes: {exc}")
            for fut, _, _ in results:
                fut.set_exception(error)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(error)
            return
        if self._on_commit is not None:
            self._on_commit(time.perf_counter() - started, len(batch))
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
