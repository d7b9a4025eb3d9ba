"""The applier process: on a SQLite store with ``apply_process`` on, ``jobpulse serve`` runs
the inbox's applier, the evaluator, the notifier and retention's pruning in a second process
beside the server.

One Python process has one interpreter lock, and the server's ingest and the applier each need
most of it under load: the applier would then fall behind ingest at half of ingest's peak rate.
Beside the server (HTTP, the inbox's appends, reads, the API's writes) the applier has a core
of its own. The two are a PostgreSQL follower and its leader on one host, with SQLite's file
as their store: its write lock and the state lock are the file's (see ``Store(shared=True)``).

The server starts the applier process once the store is migrated and the configuration
applied, and then tells it, over a pipe:

- ``wake``: events were appended (the applier's evaluator passes are woken by appends, as in
  one process), sent only when the applier wants to hear of one: it sets a flag in shared
  memory as each pass starts, and the server clears it when it sends (see
  :meth:`ApplierProcess.wake`);
- ``notify``: the server committed notifications (a flip of an API write);
- ``config``: the configuration was (re)applied: the applier takes its in-memory part (the
  maintenance windows, the receivers); the server wrote the jobs;
- ``stop``: the server is shutting down.

The applier process answers ``applied`` after every batch it applies (``?wait=applied``
waiters wake) and reports its ``status`` every ``STATUS_EVERY`` seconds: whether it leads,
when the evaluator last judged (``/readyz``), and its own metrics, which the server's
``/metrics`` serves as its own (counters add up across restarts of the applier process).

Either end notices the other's end at once: the pipe closes with the process. An applier
process that ends while the server runs is started again after ``RESTART_AFTER`` seconds
(``/readyz`` reports it meanwhile); one whose server ended stops within ``ORPHAN_GRACE``
seconds. Nothing is lost either way: the inbox is durable, and a batch's effects commit with
the removal of its events from the inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from .service import ServerLink, Sidecar, tune_gc

if TYPE_CHECKING:
    from .config import FileConfig
    from .exposition.selfmetrics import SelfMetrics
    from .settings import Settings

__all__ = ["ApplierProcess", "run_applier"]

log = logging.getLogger("jobpulse.sidecar.applier")

STATUS_EVERY = 0.5  # seconds between the applier process's status reports
RESTART_AFTER = 1.0  # seconds before an applier process that ended is started again
ORPHAN_GRACE = 5.0  # seconds an applier process whose server ended has to stop
STOP_TIMEOUT = 15.0  # seconds the server waits for its applier process to stop
# The applier process's own metrics the server serves: counters by how much they grew,
# gauges as they are. (The inbox gauges and the store's size are the server's own readings.)
COUNTERS = ("rejected", "notifications")
GAUGES = ("notifications_pending",)  # and the evaluator's last pass, as the status says

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def _samples(metrics: SelfMetrics) -> Samples:
    out: Samples = {}
    for attr in (*COUNTERS, *GAUGES):
        metric: Counter | Gauge = getattr(metrics, attr)
        values = out.setdefault(attr, {})
        for family in metric.collect():
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                values[tuple(sorted(sample.labels.items()))] = sample.value
    return out


class ApplierProcess:
    """The server's side: starts the applier process, tells it what happened, and takes its
    reports into the server's :class:`Sidecar`."""

    def __init__(self, sidecar: Sidecar) -> None:
        self._sidecar = sidecar
        self._context = multiprocessing.get_context("spawn")
        self._send_lock = threading.Lock()
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._stopping = False
        self._counted: Samples = {}  # the running applier process's counters, as last seen
        # Set by the applier process when its evaluator wants to hear of the next append (see
        # wake); it starts set, so a new process hears of the first.
        self._wake_wanted = self._context.RawValue(ctypes.c_int, 1)
        self.leading = False  # the applier process runs and judges

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        sidecar = self._sidecar
        here, there = self._context.Pipe()
        process = self._context.Process(
            target=run_applier,
            args=(
                sidecar.settings,
                sidecar.file_config,
                sidecar.engine.judge_from,
                sidecar.in_flight,
                self._wake_wanted,
                there,
            ),
            name="jobpulse-applier",
            daemon=True,
        )
        process.start()
        there.close()
        with self._send_lock:
            self._conn, self._process = here, process
        self._counted = {}
        log.info("the applier process (%s) applies the inbox and evaluates", process.pid)
        threading.Thread(
            target=self._listen, args=(here, process), name="jobpulse-applier-reports", daemon=True
        ).start()

    def stop(self) -> None:
        self._stopping = True
        self._send(("stop",))
        process = self._process
        if process is not None:
            process.join(STOP_TIMEOUT)
            if process.is_alive():
                log.warning("the applier process did not stop in %g s; terminating", STOP_TIMEOUT)
                process.terminate()
                process.join(5)
        with self._send_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.leading = False

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    # ------------------------------------------------------------------ to the applier
    def wake(self) -> None:
        """Events were appended: tell the applier process, if its evaluator is waiting to hear
        of it (an append per group commit would otherwise each cost a message both ways
        while a pass is on anyway: a flood of pings spent a twentieth of the inbox thread on
        them)."""
        wanted = self._wake_wanted
        if wanted.value:
            wanted.value = 0
            self._send(("wake",))

    def notify(self) -> None:
        self._send(("notify",))

    def configure(self, config: FileConfig) -> None:
        self._send(("config", config))

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            conn = self._conn
            if conn is None:
                return
            with contextlib.suppress(OSError, ValueError):  # it ended: _listen restarts it
                conn.send(message)

    # ------------------------------------------------------------------ from the applier
    def _listen(self, conn: Connection, process: BaseProcess) -> None:
        sidecar = self._sidecar
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "applied":
                sidecar.note_applied()
            elif kind == "status":
                self._take_status(message[1])
        self.leading = False
        if self._stopping:
            return
        process.join(1)
        log.error(
            "the applier process (%s) ended (exit code %s); starting it again in %g s",
            process.pid,
            process.exitcode,
            RESTART_AFTER,
        )
        time.sleep(RESTART_AFTER)
        if not self._stopping:
            with self._send_lock:
                self._conn = None
            conn.close()
            self.start()

    def _take_status(self, status: dict[str, Any]) -> None:
        sidecar = self._sidecar
        self.leading = bool(status["leading"])
        metrics = sidecar.metrics
        if status["last_run"] is not None:  # a new applier process: as the last one left it
            sidecar.evaluator_last_run = status["last_run"]
            sidecar.evaluator_ran_at = status["ran_at"]
            metrics.evaluator_last_run.set(status["last_run"])
        for seconds in status["writes"]:
            metrics.store_write.observe(seconds)
        samples: Samples = status["samples"]
        for attr in COUNTERS:
            counter: Counter = getattr(metrics, attr)
            seen = self._counted.setdefault(attr, {})
            for labels, value in samples.get(attr, {}).items():
                grown = value - seen.get(labels, 0.0)
                seen[labels] = value
                if grown > 0:
                    (counter.labels(**dict(labels)) if labels else counter).inc(grown)
        for attr in GAUGES:
            gauge: Gauge = getattr(metrics, attr)
            for labels, value in samples.get(attr, {}).items():
                (gauge.labels(**dict(labels)) if labels else gauge).set(value)


# ---------------------------------------------------------------------- the applier's side
def run_applier(
    settings: Settings,
    config: FileConfig | None,
    judge_from: float,
    in_flight: ctypes.c_int,
    wake_wanted: ctypes.c_int,
    conn: Connection,
) -> None:
    """The applier process's main: a :class:`Sidecar` in the applier role, until the server
    says stop or ends. ``in_flight``: the server's ingest requests in flight (shared memory):
    the applier gives way to a burst of them as in one process, where they would share the
    interpreter; here they would share the write lock, the disk's flushes and the cores with
    the load's senders. ``wake_wanted``: set here as each evaluator pass starts, cleared by
    the server when it says ``wake`` (shared memory; see :meth:`ApplierProcess.wake`)."""
    # A terminal's ^C reaches the whole process group: the server stops, then stops this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s (applier process): %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    tune_gc()
    writes: list[float] = []
    sends = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with sends, contextlib.suppress(OSError, ValueError):
            conn.send(message)

    link = ServerLink(
        judge_from=judge_from,
        in_flight=in_flight,
        on_applied=lambda: send(("applied",)),
        on_write=writes.append,
        wake_wanted=wake_wanted,
    )
    sidecar = Sidecar(settings, file_config=config, server=link)
    sidecar.start_applying()
    try:
        asyncio.run(_apply(sidecar, conn, send, writes))
    finally:
        sidecar.stop()


async def _apply(
    sidecar: Sidecar,
    conn: Connection,
    send: Callable[[tuple[Any, ...]], None],
    writes: list[float],
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def configure(config: FileConfig) -> None:
        sidecar.configure(config)
        sidecar.wake_evaluator()

    def listen() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                # The server ended: stop, and do not outlive it by more than the grace.
                log.warning("the server ended; the applier process stops")
                threading.Timer(ORPHAN_GRACE, os._exit, (0,)).start()
                break
            kind = message[0]
            if kind == "wake":
                sidecar.wake_evaluator()
            elif kind == "notify":
                loop.call_soon_threadsafe(sidecar.notifier.wake.set)
            elif kind == "config":
                loop.call_soon_threadsafe(configure, message[1])
            elif kind == "stop":
                break
        loop.call_soon_threadsafe(stop.set)

    def report() -> None:
        taken = writes[:]
        del writes[: len(taken)]  # what the writer adds meanwhile stays for the next report
        status = {
            "leading": sidecar.is_leader,
            "last_run": sidecar.evaluator_last_run,
            "ran_at": sidecar.evaluator_ran_at,
            "writes": taken,
            "samples": _samples(sidecar.metrics),
        }
        send(("status", status))

    threading.Thread(target=listen, name="jobpulse-applier-orders", daemon=True).start()
    tasks = [
        asyncio.create_task(sidecar.run_evaluator()),
        asyncio.create_task(sidecar.run_notifier()),
    ]
    try:
        while not stop.is_set():
            report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATUS_EVERY)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sidecar.notifier.close()
        report()
