"""Delivery bookkeeping shared by the sender thread, ``close()`` and ``jobpulse flush``.

Encodes events, posts batches (stamping ``sent_at``), settles the sidecar's answer into the
counters, writes and drains the spool, and logs each kind of trouble once per client so a
sidecar outage does not flood the job's log.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from ._sink import ClientStats
from ._spool import Spool
from ._transport import Reply, Transport
from .wire import Event, EventValues, event_to_wire, format_ts, values_to_wire

__all__ = ["Delivery"]

log = logging.getLogger("jobpulse.instrumentation")


class Delivery:
    """Counters, spool and once-only warnings of one client."""

    def __init__(self, spool: Spool, *, clock: Callable[[], float]) -> None:
        self.spool_store = spool
        self._clock = clock
        self._warned: set[str] = set()
        self._counts = {"sent": 0, "dropped": 0, "spooled": 0, "rejected": 0}
        self._lock = threading.Lock()

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
        """Post ``batch`` and settle the answer; the caller handles ``retry``."""
        sent_at = format_ts(self._clock())
        body = json.dumps(
            [{**event, "sent_at": sent_at} for event in batch],
            separators=(",", ":"),
            default=str,
        ).encode()
        reply = transport.post(body)
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
        """Deliver spooled batches, oldest first; True when none is left for later."""
        store = self.spool_store
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
            reply = self.post(transport, batch)
            if reply.outcome == "retry":
                store.release(claimed)
                return False
            store.done(claimed)
        return True
