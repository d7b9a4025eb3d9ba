"""Delivery bookkeeping shared by the sender thread, ``close()`` and ``jobpulse flush``.

Encodes events, posts batches (stamping ``sent_at``), settles the sidecar's answer into the
counters, writes and drains the spool, and logs each kind of trouble once per client so a
sidecar outage does not flood the job's log.

A poison batch (one the sidecar fails on, answering 5xx, while it accepts other batches) must not
hold up the spool for ever. While draining, a spooled batch that gets a 5xx is charged with a
failure when there is evidence that the fault is the batch's: the post just before it was
accepted, or a later batch of the same pass is. A 5xx with no such evidence (the sidecar answers
every batch with 503 while its store is down) charges nothing, and the drain stops after two in
a row, as it stops at once when the sidecar cannot be reached or asks to wait (408, 429): an
outage never costs a batch. Batches behind a charged one are tried in the same pass. At
:data:`MAX_BATCH_FAILURES` charges the batch is moved to the spool's quarantine folder, counted
as ``quarantined`` and logged once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ._sink import ClientStats
from ._spool import Spool
from ._transport import Reply, Transport
from .wire import Event, EventValues, event_to_wire, format_ts, values_to_wire

__all__ = ["MAX_BATCH_FAILURES", "Delivery"]

log = logging.getLogger("jobpulse.instrumentation")

MAX_BATCH_FAILURES: Final = 5
"""Server errors, each with evidence that the fault was the batch's, after which a spooled batch
is quarantined instead of being retried."""
_SUSPECTS_IN_A_ROW: Final = 2


class Delivery:
    """Counters, spool and once-only warnings of one client."""

    def __init__(self, spool: Spool, *, clock: Callable[[], float]) -> None:
        self.spool_store = spool
        self._clock = clock
        self._warned: set[str] = set()
        self._counts = {"sent": 0, "dropped": 0, "spooled": 0, "rejected": 0, "quarantined": 0}
        self._lock = threading.Lock()
        self._last_accepted = False  # the sidecar accepted the latest post (any answer but retry)
        # The longest batch to send: lowered when the sidecar answers 413 (its limits are its
        # own configuration), so that one oversized batch is split and the next ones fit.
        self.batch_limit: int | None = None

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self._counts, 0)

    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(**self._counts)

    def count(self, name: str, n: int) -> None:
        with self._lock:
            self._counts[name] += n

    def warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("jobpulse: %s", message)

    def drop(self, n: int, key: str, message: str) -> None:
        """Count ``n`` dropped events; log ``message`` the first time for ``key``.

        One lock round for both: with the sidecar away a full queue makes this the path of every
        event, and it must stay as cheap as queueing one."""
        warn_key = "drop:" + key
        with self._lock:
            self._counts["dropped"] += n
            if warn_key in self._warned:
                return
            self._warned.add(warn_key)
        log.warning("jobpulse: %s", message)

    def encode(self, events: list[Event | EventValues]) -> list[dict[str, Any]]:
        """The wire objects of ``events``: :class:`Event` objects or their field values."""
        out = []
        for event in events:
            try:
                out.append(
                    values_to_wire(event) if isinstance(event, tuple) else event_to_wire(event)
                )
            except Exception as exc:
                self.drop(1, "encode", f"an event could not be encoded and was dropped: {exc!r}")
        return out

    def post(self, transport: Transport, batch: list[dict[str, Any]]) -> Reply:
        """Post ``batch`` and settle the answer; the caller handles ``retry``, and ``split``
        (413 for a batch of more than one event: nothing was taken, send it in halves)."""
        sent_at = format_ts(self._clock())
        body = json.dumps(
            [{**event, "sent_at": sent_at} for event in batch],
            separators=(",", ":"),
            default=str,
        ).encode()
        reply = transport.post(body)
        self._last_accepted = reply.outcome != "retry"
        if reply.outcome == "final" and reply.status == 413 and len(batch) > 1:
            # Over the sidecar's batch or body limit: the caller sends it in halves, and
            # later batches no longer than that.
            self.batch_limit = len(batch) // 2
            return Reply("split", reply.status, reply.detail)
        if reply.outcome == "delivered":
            rejected = len(reply.rejected)
            self.count("sent", len(batch) - rejected)
            if rejected:
                self.count("rejected", rejected)
                first = reply.rejected[0]
                self.warn_once(
                    "rejected",
                    f"the sidecar rejected {rejected} event(s) (first: field "
                    f"{first.get('field')!r}, reason {first.get('reason')!r}); they are dropped",
                )
        elif reply.outcome == "final":
            self.count("rejected", len(batch))
            self.warn_once(
                f"final:{reply.status}",
                f"the sidecar answered HTTP {reply.status} ({reply.detail!r}); a batch of "
                f"{len(batch)} event(s) is dropped"
                + (" - check JOBPULSE_TOKEN" if reply.status in (401, 403) else ""),
            )
        else:
            self.warn_once(
                "retry",
                f"cannot deliver heartbeats to the sidecar ({reply.status or reply.detail}); "
                "retrying in the background, spooling to disk if it stays unreachable",
            )
        return reply

    def spool(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        try:
            stored = self.spool_store.write(batch)
        except OSError as exc:
            self.drop(
                len(batch),
                "spool_error",
                f"cannot write the spool {self.spool_store.directory} ({exc}); events dropped",
            )
            return
        if stored:
            self.count("spooled", len(batch))
        else:
            self.drop(
                len(batch),
                "spool_full",
                f"the spool {self.spool_store.directory} is full "
                f"({self.spool_store.max_bytes} bytes); events dropped",
            )

    def drain_spool(self, transport: Transport, stopping: Callable[[], bool]) -> bool:
        """Deliver spooled batches, oldest first; True when none is left for later.

        A batch that gets a server error is charged with a failure when the sidecar accepts
        other batches (see the module docstring) and the drain goes on behind it."""
        while True:
            done = self._drain_pass(transport, stopping)
            if done is not None:
                return done

    def _drain_pass(self, transport: Transport, stopping: Callable[[], bool]) -> bool | None:
        """One pass over the spool: as :meth:`drain_spool`, or None when a batch was split in
        halves (the halves wait in its place for the next pass)."""
        store = self.spool_store
        left = False
        split = False
        suspects: list[tuple[Path, int, Reply]] = []  # 5xx in this pass, not yet shown theirs
        for path in store.pending():
            if stopping():
                return False
            claimed = store.claim(path)
            if claimed is None:
                continue  # another process is sending it
            batch = store.read(claimed)
            if batch is None:
                self.warn_once("spool_corrupt", f"removed an unreadable spool file {path.name}")
                continue
            accepted_before = self._last_accepted
            reply = self.post(transport, batch)
            if reply.outcome == "split":
                try:
                    store.split(claimed, batch)
                except OSError as exc:
                    where = store.directory
                    self.warn_once("spool_error", f"cannot write the spool {where}: {exc}")
                    return False
                split = True
                continue
            if reply.outcome != "retry":
                store.done(claimed)
                for suspect, size, failed in suspects:  # others go through: theirs was the fault
                    again = store.claim(suspect)
                    if again is not None:
                        self._charge(again, size, failed)
                suspects.clear()
                continue
            left = True
            if reply.status < 500:  # unreachable, or asked to wait: an outage, nobody's fault
                store.release(claimed)
                return False
            if accepted_before:
                self._charge(claimed, len(batch), reply)
                continue
            suspects.append((store.release(claimed), len(batch), reply))
            if len(suspects) >= _SUSPECTS_IN_A_ROW:
                return False  # server errors in a row: the sidecar's trouble, not the batches'
        return None if split else not left

    def _charge(self, claimed: Path, size: int, reply: Reply) -> None:
        """Count one more failure of the batch at ``claimed``; quarantine it at the limit."""
        store = self.spool_store
        failures = store.failures(claimed) + 1
        if failures < MAX_BATCH_FAILURES:
            store.release(claimed, failures=failures)
            return
        try:
            where = str(store.quarantine(claimed))
        except OSError as exc:
            store.done(claimed)
            where = f"nowhere: the quarantine folder cannot be written ({exc}), so it was deleted"
        self.count("quarantined", size)
        self.warn_once(
            "quarantine",
            f"the sidecar failed {failures} times on a spooled batch of {size} event(s) (last: "
            f"HTTP {reply.status} {reply.detail[:100]!r}) while accepting other batches; it was "
            f"moved to {where} so that the spool does not stall behind it",
        )
