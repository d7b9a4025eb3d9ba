"""Group commit: one thread takes what was submitted in batches, so what arrives while one
batch commits forms the next and durability costs one fsync per batch, not per request.

:class:`~.writer.Writer` (every write but the inbox's appends) and
:class:`~.appender.Appender` (the inbox's appends) are the two; each says how a batch commits.
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

__all__ = ["GroupCommit", "StoreUnavailable"]

I = TypeVar("I")  # noqa: E741 - the item type
_STOP = object()


class StoreUnavailable(Exception):
    """The store cannot take writes; nothing of the item was kept."""


class GroupCommit(ABC, Generic[I]):
    def __init__(self, *, name: str, max_batch: int) -> None:
        self._name = name
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @abstractmethod
    def _commit_batch(self, batch: list[I]) -> None:
        """Commit ``batch`` and answer each item's future."""

    @abstractmethod
    def _fail(self, item: I, error: Exception) -> None:
        """Answer ``item`` with ``error``."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Commit what was submitted before the stop; refuse what comes after it."""
        with self._lock:
            self._stopped = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
            self._thread = None
        while True:  # anything that raced the stop: fail it now rather than leave it waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._fail(item, StoreUnavailable("the sidecar is stopping"))

    def waiting(self) -> bool:
        """Whether items wait to be taken (besides a batch being committed)."""
        return not self._queue.empty()

    def _enqueue(self, item: I) -> None:
        """Queue ``item``, or fail its future when the thread is stopping."""
        with self._lock:
            if self._stopped:
                self._fail(item, StoreUnavailable("the sidecar is stopping"))
                return
            self._queue.put(item)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._commit_batch(batch)
            if stop:
                return
