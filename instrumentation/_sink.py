"""What the monitor needs from a client, and the counters every client reports.

:class:`EventSink` is the seam between the instrumentation and delivery: the heartbeat client,
the in-memory recorder in :mod:`jobpulse.instrumentation.testing`, or a user's own sink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .wire import Event

__all__ = ["ClientStats", "EventSink"]


@runtime_checkable
class EventSink(Protocol):
    """Accepts heartbeat events. ``emit`` must be cheap and must never block or raise."""

    def emit(self, event: Event) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self, timeout: float | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Event counters: ``sent`` (accepted by the sidecar), ``dropped`` (queue or spool full,
    emitted after close, unencodable), ``spooled`` (written to disk; counted again as ``sent``
    once a later delivery succeeds), ``rejected`` (refused by the sidecar, not retried) and
    ``quarantined`` (spooled, then set aside in the spool's ``quarantine`` folder because the
    sidecar kept failing on their batch while accepting others)."""

    sent: int = 0
    dropped: int = 0
    spooled: int = 0
    rejected: int = 0
    quarantined: int = 0
