"""Per-process concerns of the client: the default client, fork handling, ``jobpulse flush``.

The default client is created on first use from the ``JOBPULSE_*`` variables (never at import).
After ``fork`` every live client gets fresh locks, an empty queue and no thread (the child
starts its own on its first event), so a child never inherits a lock held by a thread that does
not exist in it, nor re-sends its parent's queued events.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Protocol

from ._sink import EventSink
from .errors import ConfigError

if TYPE_CHECKING:
    from .client import HeartbeatClient

__all__ = ["flush_main", "get_client", "reset_after_fork", "set_client"]


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_TRACKED: weakref.WeakSet[_ForkAware] = weakref.WeakSet()
_hook_installed = False
_default: EventSink | None = None
_default_lock = threading.Lock()


def reset_after_fork(obj: _ForkAware) -> None:
    """Call ``obj._after_fork()`` in the child of every later fork, while ``obj`` lives."""
    global _hook_installed
    _TRACKED.add(obj)
    if not _hook_installed and hasattr(os, "register_at_fork"):
        _hook_installed = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for obj in list(_TRACKED):
        obj._after_fork()


def get_client() -> EventSink:
    """The process's default client, created from ``JOBPULSE_*`` on first use."""
    global _default
    client = _default
    if client is None:
        from .client import HeartbeatClient

        with _default_lock:
            if _default is None:
                _default = HeartbeatClient()
            client = _default
    return client


def set_client(client: EventSink | None) -> EventSink | None:
    """Make ``client`` the process default (None: create from the environment on next use).

    Returns the previous default, which the caller may close.
    """
    global _default
    with _default_lock:
        previous, _default = _default, client
    return previous


def flush_main(args: argparse.Namespace) -> int:
    """``jobpulse flush``: deliver this machine's spool now; 0 when nothing is left."""
    from .client import HeartbeatClient

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
