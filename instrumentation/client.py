"""The heartbeat client: a bounded queue in front of one background sender thread.

``emit`` is an O(1) append that never blocks and never raises: when the queue is full the event
is dropped, counted and logged once. The sender batches, posts with the standard library,
retries with exponential backoff and full jitter, honours per-event rejections and treats any
4xx other than 408/429 as final for the batch. After repeated failures, and at interpreter exit
(a flush bounded by ``exit_timeout``), what is left goes to the on-disk spool, which the next
client to start delivers. After ``fork`` the child starts with an empty queue and its own thread.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from ._backoff import Backoff
from ._delivery import Delivery
from ._process import default_client, replace_default, reset_after_fork
from ._settings import ClientSettings
from ._sink import ClientStats, EventSink
from ._spool import DEFAULT_MAX_BYTES, Spool
from ._transport import Transport
from .errors import ConfigError
from .wire import Event, EventValues

__all__ = ["ClientStats", "EventSink", "HeartbeatClient", "flush_main", "get_client", "set_client"]

# The sidecar's default limit of events per request (``max_batch_events``): a process that
# exits sends what is queued in as few requests as it allows. A sidecar configured lower
# answers 413, and the client sends in halves from then on (``Delivery.batch_limit``).
BATCH_SIZE: Final = 1000
EXIT_TIMEOUT: Final = 2.0
SPOOL_AFTER_FAILURES: Final = 5
SPOOL_RETRY_INTERVAL: Final = 30.0


class HeartbeatClient:
    """Delivers events to the sidecar at ``url`` (``JOBPULSE_URL``) without slowing the job.

    Arguments left as None come from ``JOBPULSE_URL``, ``JOBPULSE_TOKEN``,
    ``JOBPULSE_SPOOL_DIR``, ``JOBPULSE_QUEUE_SIZE``, ``JOBPULSE_TIMEOUT`` and
    ``JOBPULSE_DISABLED``, read now; a bad value raises ConfigError naming the variable.
    ``start=False`` delays the sender thread (and its delivery of the spool) to the first emit.
    """

    _queue: deque[Event | EventValues]
    _inflight: list[dict[str, Any]] | None
    _held: deque[list[dict[str, Any]]]  # encoded batches to send before the queue (split)
    _thread: threading.Thread | None

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        queue_size: int | None = None,
        timeout: float | None = None,
        disabled: bool | None = None,
        clock: Callable[[], float] = time.time,
        *,
        batch_size: int = BATCH_SIZE,
        exit_timeout: float = EXIT_TIMEOUT,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen value object
        sleep: Callable[[float], object] | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> None:
        self.settings = ClientSettings.resolve(
            url=url,
            token=token,
            spool_dir=spool_dir,
            queue_size=queue_size,
            timeout=timeout,
            disabled=disabled,
            environ=environ,
        )
        self._batch_size = batch_size
        self._exit_timeout = exit_timeout
        self._backoff = backoff
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._delivery = Delivery(
            Spool(self.settings.spool_dir, max_bytes=spool_max_bytes), clock=clock
        )
        self._queue_full_message = (
            f"the heartbeat queue is full ({self.settings.queue_size} events; "
            "JOBPULSE_QUEUE_SIZE); dropping events until the sender catches up"
        )
        self._closed = False
        self._reset()
        reset_after_fork(self)
        if start and not self.settings.disabled:
            self._start()

    @property
    def stats(self) -> ClientStats:
        """Counters since this client was created: sent, dropped, spooled, rejected."""
        return self._delivery.stats()

    def emit(self, event: Event) -> None:
        """Queue ``event`` for delivery. O(1); never blocks, never raises."""
        self._enqueue(event)

    def emit_values(self, values: EventValues) -> None:
        """Queue the event ``Event(*values)``, which the sender thread encodes without ever
        building it: the decorator's way to emit, cheaper for the job's thread than
        :meth:`emit`. O(1); never blocks, never raises."""
        self._enqueue(values)

    def _enqueue(self, item: Event | EventValues) -> None:
        if self.settings.disabled:
            return
        if self._closed:
            self._delivery.drop(1, "closed", "an event emitted after close() was dropped")
            return
        queue = self._queue
        if len(queue) >= self.settings.queue_size:
            self._delivery.drop(1, "queue_full", self._queue_full_message)
            return
        queue.append(item)
        if self._thread is None:
            self._start()
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far was delivered; False on timeout or failure.

        Returns early (False) as soon as a delivery attempt made during the flush fails, so a
        short-lived process does not wait out its whole budget for a sidecar that is down.
        """
        if self.settings.disabled:
            return True
        thread = self._thread
        if thread is None or not thread.is_alive():
            return not self._queue and self._inflight is None and not self._held
        deadline = time.monotonic() + (self._exit_timeout if timeout is None else timeout)
        with self._lock:
            failures = self._failures
        self._urgent.set()
        self._wake.set()
        with self._idle:
            while self._queue or self._inflight is not None or self._held:
                remaining = deadline - time.monotonic()
                if self._failures != failures or remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush within ``timeout`` (default ``exit_timeout``), stop, spool what is left."""
        if self._closed:
            return
        budget = self._exit_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        self.flush(budget)
        with self._lock:
            self._stopping = True
        self._urgent.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._closed = True
            leftovers = list(self._inflight or [])
            self._inflight = None
            while self._held:
                leftovers.extend(self._held.popleft())
            while self._queue:
                leftovers.extend(self._delivery.encode([self._queue.popleft()]))
        step = self._batch_limit()
        for i in range(0, len(leftovers), step):
            self._delivery.spool(leftovers[i : i + step])
        atexit.unregister(self._close_at_exit)

    def deliver_spool(self) -> bool:
        """Send spooled batches from the calling thread; True when the spool is empty."""
        transport = self._transport()
        try:
            return self._delivery.drain_spool(transport, lambda: False)
        finally:
            transport.close()

    def __enter__(self) -> HeartbeatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sender thread ---------------------------------------------------------------------

    def _after_fork(self) -> None:
        self._reset()
        self._delivery.reset_after_fork()

    def _reset(self) -> None:
        """Fresh runtime state (at creation, and in a child after fork)."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._wake = threading.Event()  # events are waiting
        self._urgent = threading.Event()  # flush or close: cut a backoff short
        self._queue = deque()
        self._inflight = None
        self._held = deque()
        self._thread = None
        self._stopping = False
        self._failures = 0

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="jobpulse-sender", daemon=True)
            self._thread.start()
        atexit.register(self._close_at_exit)

    def _close_at_exit(self) -> None:
        self.close(self._exit_timeout)

    def _transport(self) -> Transport:
        return Transport(
            self.settings.url, token=self.settings.token, timeout=self.settings.timeout
        )

    def _run(self) -> None:
        transport = self._transport()
        failures = 0  # consecutive failed attempts
        spool_due = 0.0  # deliver the spool left by earlier processes first
        try:
            while True:
                if time.monotonic() >= spool_due:
                    stopping = lambda: self._stopping  # noqa: E731
                    if not self._delivery.drain_spool(transport, stopping):
                        spool_due = time.monotonic() + SPOOL_RETRY_INTERVAL
                    else:
                        spool_due = float("inf")
                self._wake.clear()
                batch = self._take()
                if batch is None:
                    with self._idle:
                        self._idle.notify_all()
                    if self._stopping:
                        return
                    wait = spool_due - time.monotonic()
                    self._wake.wait(None if wait == float("inf") else max(wait, 0.0))
                    continue
                reply = self._delivery.post(transport, batch)
                with self._idle:
                    if reply.outcome == "split":  # over the sidecar's limits: in halves
                        half = len(batch) // 2
                        self._inflight = batch[:half]
                        self._held.appendleft(batch[half:])
                        continue
                    if reply.outcome != "retry":
                        self._inflight = None
                    else:
                        self._failures += 1
                    self._idle.notify_all()
                if reply.outcome != "retry":
                    if failures:
                        spool_due = 0.0  # the sidecar is back: deliver what was spooled
                    failures = 0
                    continue
                failures += 1
                if self._stopping:
                    return  # close() spools what is left
                if failures >= SPOOL_AFTER_FAILURES:
                    self._spool_backlog()
                    spool_due = min(spool_due, time.monotonic() + SPOOL_RETRY_INTERVAL)
                self._pause(self._backoff.delay(failures, self._rng, retry_after=reply.retry_after))
        finally:
            transport.close()

    def _take(self) -> list[dict[str, Any]] | None:
        with self._lock:
            if self._closed:
                return None
            if self._inflight is None and self._held:
                self._inflight = self._held.popleft()
            elif self._inflight is None and self._queue:
                limit = self._batch_limit()
                events: list[Event | EventValues] = []
                while self._queue and len(events) < limit:
                    events.append(self._queue.popleft())
                self._inflight = self._delivery.encode(events)
            return self._inflight

    def _batch_limit(self) -> int:
        """Events per batch: ``batch_size``, or fewer once the sidecar answered 413."""
        return min(self._batch_size, self._delivery.batch_limit or self._batch_size)

    def _spool_backlog(self) -> None:
        """The sidecar keeps failing: move the in-flight batch and the queue to disk."""
        while True:
            with self._lock:
                if self._closed:
                    return
                batch, self._inflight = self._inflight, None
            if batch:
                self._delivery.spool(batch)
            if not (self._queue or self._held) or self._take() is None:
                return

    def _pause(self, delay: float) -> None:
        if self._sleep is not None:
            self._sleep(delay)
        elif self._urgent.wait(delay):
            self._urgent.clear()


def get_client() -> EventSink:
    """The process's default client, created from ``JOBPULSE_*`` on first use."""
    return default_client(HeartbeatClient)


def set_client(client: EventSink | None) -> EventSink | None:
    """Make ``client`` the process default (None: create from the environment on next use).

    Returns the previous default, which the caller may close.
    """
    return replace_default(client)


def flush_main(args: argparse.Namespace) -> int:
    """``jobpulse flush``: deliver this machine's spool now; 0 when nothing is left."""
    try:
        client: HeartbeatClient = HeartbeatClient(url=getattr(args, "url", None), start=False)
    except ConfigError as exc:
        print(f"jobpulse flush: {exc}", file=sys.stderr)
        return 78
    if client.settings.disabled:
        print("jobpulse flush: JOBPULSE_DISABLED is set; nothing sent", file=sys.stderr)
        return 1
    ok = client.deliver_spool()
    stats = client.stats
    client.close(0)
    where = client.settings.spool_dir
    if ok:
        print(f"jobpulse flush: delivered {stats.sent} events from {where}", file=sys.stderr)
        return 0
    print(
        f"jobpulse flush: delivered {stats.sent} events; batches remain in {where} "
        f"(sidecar at {client.settings.url} unreachable or refusing)",
        file=sys.stderr,
    )
    return 1
